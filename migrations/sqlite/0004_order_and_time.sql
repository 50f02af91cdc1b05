-- Order and time: the same columns and meanings as the PostgreSQL migration 0004.
-- SQLite has one daemon per file, so its one clock is the local one; the claim token
-- keeps the write path the same on both backends.

ALTER TABLE tracked_projects ADD COLUMN claim_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tracked_projects ADD COLUMN every_tick BOOLEAN NOT NULL DEFAULT 1;

UPDATE tracked_projects SET next_poll_at = '1970-01-01T00:00:00.000Z' WHERE next_poll_at IS NULL;

CREATE INDEX tracked_projects_lease_idx ON tracked_projects (lease_owner)
    WHERE lease_owner IS NOT NULL;

ALTER TABLE sync_runs ADD COLUMN overran BOOLEAN NOT NULL DEFAULT 0;

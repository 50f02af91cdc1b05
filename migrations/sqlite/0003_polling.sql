-- Adaptive polling, batched writes and work claiming. Same meaning as the PostgreSQL
-- migration; SQLite has a single writer (enforced by a lock file), so leases are only
-- recorded here, never contended.

ALTER TABLE editing_projects ADD COLUMN content_hash INTEGER;

ALTER TABLE tracked_projects ADD COLUMN lease_owner TEXT;
ALTER TABLE tracked_projects ADD COLUMN lease_expires_at TEXT;

CREATE INDEX tracked_projects_due_idx ON tracked_projects (next_poll_at, project_id) WHERE enabled;

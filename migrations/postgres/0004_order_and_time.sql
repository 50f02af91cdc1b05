-- Order and time come from the database, not from replicas' clocks.
-- Forward-only: never edit a released migration, add one.

-- A fencing token: the claim statement increments it and hands it to the claimer, and
-- every write of the poll's result (project row, history, tracking state, failure record)
-- repeats it in its WHERE. A replica that was paused, partitioned or kept a fetch past its
-- lease finds its token outdated and writes nothing, whatever its clock says.
ALTER TABLE tracked_projects ADD COLUMN claim_token bigint NOT NULL DEFAULT 0;

-- TRUE when the polling policy wants the project at every tick (a transient status, no
-- failures): `run --once` polls these however recently they were polled.
ALTER TABLE tracked_projects ADD COLUMN every_tick boolean NOT NULL DEFAULT TRUE;

-- Due times are never NULL any more, so "most overdue first" is one index order on both
-- backends (PostgreSQL sorts NULLs last, SQLite first). A never-polled project is due
-- since the epoch: the most overdue of all.
UPDATE tracked_projects SET next_poll_at = TIMESTAMPTZ '1970-01-01 00:00:00+00'
WHERE next_poll_at IS NULL;

-- Lease renewal and release look projects up by their holder.
CREATE INDEX tracked_projects_lease_idx ON tracked_projects (lease_owner)
    WHERE lease_owner IS NOT NULL;

-- A cycle that stopped claiming before the next tick with projects still due.
ALTER TABLE sync_runs ADD COLUMN overran boolean NOT NULL DEFAULT FALSE;

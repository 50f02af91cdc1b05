-- Poll requests: `ice-sync refresh`, POST /refresh and ICE callbacks ask for a project to be
-- polled now. Forward-only: never edit a released migration, add one.

-- When the oldest pending request for this project was made; NULL when nothing is
-- requested. Every claim (scheduled, `run --once`, a request's own) clears it: a poll is a
-- poll, so one poll serves every request made before its claim. Writes never set or clear
-- it, so a request that arrives while a fetch is in flight is served by a poll after it.
ALTER TABLE tracked_projects ADD COLUMN requested_at timestamptz;

-- The queue: requested projects oldest request first, for the requested cycle's claim and
-- the daemon's cheap "anything pending?" probe. Only pending rows are indexed, so the
-- index stays as small as the queue.
CREATE INDEX tracked_projects_requested_idx ON tracked_projects (requested_at, project_id)
    WHERE requested_at IS NOT NULL;

-- What started a cycle: 'scheduled' (a tick of sync.schedule), 'once' (`run --once`),
-- 'all' (`run --once --all`) or 'request' (a poll request). NULL for runs recorded before
-- this migration: nobody wrote it down then.
ALTER TABLE sync_runs ADD COLUMN trigger text;

-- Adaptive polling, batched writes and work claiming across replicas.

-- A hash of everything the API returned, so an unchanged project is recognised without
-- reading its (possibly large) row back, and costs only a batched "polled" update.
ALTER TABLE editing_projects ADD COLUMN content_hash bigint;

-- A replica that claims a project holds it until lease_expires_at; a replica that dies
-- loses its claims when they expire, and another takes the projects over.
ALTER TABLE tracked_projects ADD COLUMN lease_owner text;
ALTER TABLE tracked_projects ADD COLUMN lease_expires_at timestamptz;

-- Claiming reads "enabled and due, oldest first".
CREATE INDEX tracked_projects_due_idx ON tracked_projects (next_poll_at, project_id) WHERE enabled;

-- Retention of bookkeeping, and the region this database mirrors. Forward-only: never
-- edit a released migration, add one.

-- A history row keeps the id of the cycle that wrote it after that sync_runs row is pruned
-- (retention.sync_runs): the reference becomes a plain number, no longer a foreign key.
-- Dropping the constraint is a catalog change (no scan, no rewrite of history). The
-- alternative, ON DELETE SET NULL, would need an index on sync_run_id (a delete of a run
-- looks its history rows up) and would rewrite history rows at every prune; keeping the
-- id costs nothing and still says which cycle, long gone, observed the change.
-- docs/operations.md, "Retention", has the argument and the figures.
ALTER TABLE editing_project_history DROP CONSTRAINT IF EXISTS editing_project_history_sync_run_id_fkey;

-- Pruning reads the oldest rows first, a small batch at a time: by start time for sweeps,
-- by observation time for undelivered webhook rows (webhook.max_pending_age).
CREATE INDEX list_sweeps_started_idx ON list_sweeps (started_at);
CREATE INDEX webhook_outbox_observed_idx ON webhook_outbox (observed_at);

-- What this database mirrors: one row, written at the first start of a daemon (or
-- `run --once`, `refresh`), checked at every later one. ICE project IDs belong to a
-- region, so a daemon configured for another region would see every project "not found";
-- it is refused instead (see docs/operations.md, "One database per region").
-- account: the Alibaba Cloud account ID where the configuration names it (the account in
-- ice.role_arn), else NULL: not known, not checked.
CREATE TABLE database_identity (
    id          integer PRIMARY KEY CHECK (id = 1),
    region      text NOT NULL,
    account     text,
    recorded_at timestamptz NOT NULL,
    recorded_by text NOT NULL
);

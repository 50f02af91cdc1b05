-- Retention of bookkeeping, and the region this database mirrors: the same change as the
-- PostgreSQL migration 0011 (see there for why). Forward-only: never edit a released
-- migration, add one.
--
-- SQLite cannot drop a foreign key in place, so editing_project_history is rebuilt
-- without it: copied into a new table, the old one dropped, the new one renamed, its
-- indexes created again. Same columns, same ids (and AUTOINCREMENT counter), same
-- constraint and index names. legacy_alter_table keeps the rename from re-parsing the
-- views that read the table (they name it, and resolve to the new one once it carries
-- the name); without it the rename fails, since the old table is gone by then. The cost
-- is a copy of the table: 9 s and about as much free space again as the table takes for
-- 1M rows (docs/operations.md, "Retention"); the file keeps the freed pages until VACUUM.
CREATE TABLE editing_project_history_rebuilt (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id               TEXT NOT NULL,
    seq                      INTEGER NOT NULL,
    observed_at              TEXT NOT NULL,
    event                    TEXT NOT NULL,
    previous_status          TEXT,
    status                   TEXT,
    previous_business_status TEXT,
    business_status          TEXT,
    modified_time            TEXT,
    request_id               TEXT,
    -- The cycle that wrote the row; kept when retention.sync_runs prunes that cycle.
    sync_run_id              INTEGER,
    skipped_states           TEXT,
    CONSTRAINT editing_project_history_seq_key UNIQUE (project_id, seq)
);

INSERT INTO editing_project_history_rebuilt
    (id, project_id, seq, observed_at, event, previous_status, status,
     previous_business_status, business_status, modified_time, request_id, sync_run_id,
     skipped_states)
SELECT id, project_id, seq, observed_at, event, previous_status, status,
       previous_business_status, business_status, modified_time, request_id, sync_run_id,
       skipped_states
FROM editing_project_history
ORDER BY id;

-- Ids only grow, even past rows that no longer exist: the counter moves over too.
DELETE FROM sqlite_sequence WHERE name = 'editing_project_history_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'editing_project_history_rebuilt', seq FROM sqlite_sequence
WHERE name = 'editing_project_history';

DROP TABLE editing_project_history;
PRAGMA legacy_alter_table = ON;
ALTER TABLE editing_project_history_rebuilt RENAME TO editing_project_history;
PRAGMA legacy_alter_table = OFF;

CREATE INDEX editing_project_history_observed_idx ON editing_project_history (observed_at);
CREATE INDEX editing_project_history_day_idx
    ON editing_project_history (substr(observed_at, 1, 10));

CREATE INDEX list_sweeps_started_idx ON list_sweeps (started_at);
CREATE INDEX webhook_outbox_observed_idx ON webhook_outbox (observed_at);

CREATE TABLE database_identity (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    region      TEXT NOT NULL,
    account     TEXT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL
);

-- Analytics facts kept by the writer: the same tables, trigger and views as the PostgreSQL
-- migration 0012 (see there for what each table holds and why). Forward-only: never edit a
-- released migration, add one.
--
-- The trigger runs inside the statement that inserts the history row, so its facts commit or
-- roll back with it. The tables are WITHOUT ROWID: their primary key is the table, so the
-- key costs no second copy of the row. SQLite has one writer, so the shared rollup rows cost
-- no waiting: their shard column (PostgreSQL's, for identical tables) is always 0 here. Durations are computed as in 0002 (julianday differences rounded to the
-- millisecond), days as substr(observed_at, 1, 10).

CREATE TABLE editing_project_stretches (
    project_id       TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    status           TEXT,
    business_status  TEXT,
    entered_at       TEXT NOT NULL,
    left_at          TEXT NOT NULL,
    duration_seconds REAL NOT NULL,
    skipped_on_entry TEXT,
    skipped_on_exit  TEXT,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;

CREATE TABLE editing_project_lead_facts (
    project_id    TEXT NOT NULL PRIMARY KEY,
    first_status  TEXT,
    first_seen_at TEXT NOT NULL,
    producing_at  TEXT,
    finished_at   TEXT,
    outcome       TEXT,
    seconds_to_producing REAL,
    seconds_producing    REAL,
    seconds_to_finished  REAL
) WITHOUT ROWID;

CREATE TABLE editing_project_daily_counts (
    day                  TEXT NOT NULL,
    event                TEXT NOT NULL,
    from_status          TEXT NOT NULL,
    to_status            TEXT NOT NULL,
    from_business_status TEXT NOT NULL,
    to_business_status   TEXT NOT NULL,
    transitions          INTEGER NOT NULL,
    shard                INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, event, from_status, to_status, from_business_status, to_business_status, shard)
) WITHOUT ROWID;

CREATE TABLE editing_project_stretch_days (
    day             TEXT NOT NULL,
    status          TEXT NOT NULL,
    business_status TEXT NOT NULL,
    stretches       INTEGER NOT NULL,
    total_seconds   REAL NOT NULL,
    max_seconds     REAL NOT NULL,
    shard           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, status, business_status, shard)
) WITHOUT ROWID;

-- Backfill from the history already there, with the definitions the views used until now.
INSERT INTO editing_project_stretches
SELECT project_id, seq, status, business_status, entered_at, left_at,
       ROUND((julianday(left_at) - julianday(entered_at)) * 86400, 3),
       skipped_on_entry, skipped_on_exit
FROM (
    SELECT h.project_id, h.seq, h.event, h.status, h.business_status,
           h.observed_at AS entered_at,
           LEAD(h.observed_at) OVER w AS left_at,
           h.skipped_states AS skipped_on_entry,
           LEAD(h.skipped_states) OVER w AS skipped_on_exit
    FROM editing_project_history h
    WINDOW w AS (PARTITION BY h.project_id ORDER BY h.seq)
) s
WHERE event <> 'removed' AND left_at IS NOT NULL;

INSERT INTO editing_project_lead_facts
SELECT project_id, first_status, first_seen_at, producing_at, finished_at, outcome,
       seconds_to_producing, seconds_producing, seconds_to_finished
FROM editing_project_lead_times;

INSERT INTO editing_project_daily_counts (day, event, from_status, to_status,
    from_business_status, to_business_status, transitions)
SELECT day, event, COALESCE(from_status, ''), COALESCE(to_status, ''),
       COALESCE(from_business_status, ''), COALESCE(to_business_status, ''), transitions
FROM editing_project_daily_transitions;

INSERT INTO editing_project_stretch_days (day, status, business_status, stretches,
    total_seconds, max_seconds)
SELECT substr(left_at, 1, 10), COALESCE(status, ''), COALESCE(business_status, ''),
       COUNT(*), SUM(duration_seconds), MAX(duration_seconds)
FROM editing_project_stretches
GROUP BY 1, 2, 3;

-- The writer's side: what one new history row changes. (Every INSERT ... SELECT with an
-- ON CONFLICT has a WHERE, so SQLite cannot read the ON as a join constraint.)
CREATE TRIGGER editing_project_history_facts
AFTER INSERT ON editing_project_history
BEGIN
    INSERT INTO editing_project_stretches
    SELECT p.project_id, p.seq, p.status, p.business_status, p.observed_at, NEW.observed_at,
           ROUND((julianday(NEW.observed_at) - julianday(p.observed_at)) * 86400, 3),
           p.skipped_states, NEW.skipped_states
    FROM editing_project_history p
    WHERE p.project_id = NEW.project_id AND p.seq = NEW.seq - 1 AND p.event <> 'removed'
    -- Only a hand-edited history can meet an existing stretch: never fail the writer.
    ON CONFLICT (project_id, seq) DO NOTHING;

    -- From the stretch just written: its key is the table, one probe.
    INSERT INTO editing_project_stretch_days (day, status, business_status, stretches,
        total_seconds, max_seconds)
    SELECT substr(left_at, 1, 10), COALESCE(status, ''), COALESCE(business_status, ''),
           1, duration_seconds, duration_seconds
    FROM editing_project_stretches
    WHERE project_id = NEW.project_id AND seq = NEW.seq - 1
    ON CONFLICT (day, status, business_status, shard) DO UPDATE
    SET stretches = stretches + 1,
        total_seconds = total_seconds + excluded.total_seconds,
        max_seconds = MAX(max_seconds, excluded.max_seconds);

    INSERT INTO editing_project_daily_counts (day, event, from_status, to_status,
        from_business_status, to_business_status, transitions)
    VALUES (substr(NEW.observed_at, 1, 10), NEW.event,
            COALESCE(NEW.previous_status, ''), COALESCE(NEW.status, ''),
            COALESCE(NEW.previous_business_status, ''), COALESCE(NEW.business_status, ''), 1)
    ON CONFLICT (day, event, from_status, to_status, from_business_status, to_business_status,
                 shard)
    DO UPDATE SET transitions = transitions + 1;

    INSERT INTO editing_project_lead_facts
    SELECT NEW.project_id,
           CASE WHEN NEW.event = 'first_seen' THEN NEW.status END,
           NEW.observed_at,
           CASE WHEN NEW.status = 'Producing' THEN NEW.observed_at END,
           CASE WHEN NEW.status IN ('Produced', 'ProduceFailed') THEN NEW.observed_at END,
           CASE WHEN NEW.status IN ('Produced', 'ProduceFailed') THEN NEW.status END,
           CASE WHEN NEW.status = 'Producing' THEN 0.0 END,
           NULL,
           CASE WHEN NEW.status IN ('Produced', 'ProduceFailed') THEN 0.0 END
    WHERE NEW.seq = 1
    ON CONFLICT (project_id) DO NOTHING;

    UPDATE editing_project_lead_facts
    SET producing_at = NEW.observed_at, finished_at = NULL, outcome = NULL,
        seconds_to_producing = ROUND((julianday(NEW.observed_at) - julianday(first_seen_at)) * 86400, 3),
        seconds_producing = NULL, seconds_to_finished = NULL
    WHERE NEW.seq > 1 AND NEW.status = 'Producing'
      AND project_id = NEW.project_id AND producing_at IS NULL;

    UPDATE editing_project_lead_facts
    SET finished_at = NEW.observed_at, outcome = NEW.status,
        seconds_producing = ROUND((julianday(NEW.observed_at) - julianday(producing_at)) * 86400, 3),
        seconds_to_finished = ROUND((julianday(NEW.observed_at) - julianday(first_seen_at)) * 86400, 3)
    WHERE NEW.seq > 1 AND NEW.status IN ('Produced', 'ProduceFailed')
      AND project_id = NEW.project_id
      AND (finished_at IS NULL
           OR (NEW.status = 'ProduceFailed' AND outcome = 'Produced'
               AND finished_at = NEW.observed_at));
END;

-- The views keep their names, columns and rows, and read the facts.
DROP VIEW editing_project_status_intervals;
CREATE VIEW editing_project_status_intervals AS
SELECT project_id, status, business_status, entered_at, left_at, duration_seconds,
       skipped_on_entry, skipped_on_exit
FROM editing_project_stretches
UNION ALL
SELECT h.project_id, h.status, h.business_status, h.observed_at AS entered_at,
       NULL AS left_at, NULL AS duration_seconds, h.skipped_states AS skipped_on_entry,
       NULL AS skipped_on_exit
FROM editing_project_rows p
JOIN editing_project_history h ON h.project_id = p.project_id AND h.seq = p.history_seq
WHERE h.event <> 'removed';

DROP VIEW editing_project_lead_times;
CREATE VIEW editing_project_lead_times AS
SELECT f.project_id,
       p.project_type,
       f.first_status,
       f.first_seen_at,
       f.producing_at,
       f.finished_at,
       f.outcome,
       f.seconds_to_producing,
       f.seconds_producing,
       f.seconds_to_finished
FROM editing_project_lead_facts f
LEFT JOIN editing_project_rows p ON p.project_id = f.project_id;

DROP VIEW editing_project_daily_transitions;
CREATE VIEW editing_project_daily_transitions AS
SELECT day,
       event,
       NULLIF(from_status, '') AS from_status,
       NULLIF(to_status, '') AS to_status,
       NULLIF(from_business_status, '') AS from_business_status,
       NULLIF(to_business_status, '') AS to_business_status,
       SUM(transitions) AS transitions
FROM editing_project_daily_counts
GROUP BY day, event, from_status, to_status, from_business_status, to_business_status;

CREATE INDEX editing_project_lead_facts_finished_idx
    ON editing_project_lead_facts (finished_at, outcome, seconds_producing);
-- No (status, left_at) index on the stretches here, unlike PostgreSQL: it serves the
-- percentile panels' shape, and SQLite has no percentile_cont; averages and maxima per status
-- over a range of days come from editing_project_stretch_days. It would cost ~70 bytes and a
-- B-tree insert per history row.

DROP INDEX editing_project_history_day_idx;

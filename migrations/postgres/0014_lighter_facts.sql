-- Lighter analytics facts: what each history row costs the writer and the disk, with the
-- answers of every view unchanged. Forward-only: never edit a released migration, add one.
--
-- * editing_project_stretches was a copy of history (one row per finished stretch, its
--   primary key and a (status, left_at) index: three B-tree inserts per history row and
--   ~200 bytes per row on disk) that no documented query or dashboard panel reads: Q2 and
--   the per-day figures read editing_project_stretch_days, the lead-time panels
--   editing_project_lead_facts. It becomes a view with the same name, columns and rows,
--   reading a history row and the one after it (seq + 1) through the unique key;
--   editing_project_status_intervals reads history the same way. The trigger keeps the
--   rollup by reading the row before the new one, as it did to write the stretch.
-- * editing_project_history_pkey (the id key) is dropped: nothing looks history up by id
--   (readers catch up by (project_id, seq), docs/change-feed.md), and the exactly-once
--   guarantee is the UNIQUE (project_id, seq) key behind the compare-and-set on
--   editing_project_rows.history_seq. id keeps its column and its sequence; that unique key
--   becomes the table's replica identity for logical replication.
-- docs/performance.md (analytics) has the figures before and after.

LOCK TABLE editing_project_history IN SHARE ROW EXCLUSIVE MODE;

-- The intervals: a history row (not a removal) and the row after it, if any. Both join
-- conditions are spelled out so that either side can be probed through
-- editing_project_history_seq_key: from a project's rows (a drill-down) or from a window
-- of the next rows' observed_at (percentiles of a status over a range of time).
CREATE OR REPLACE VIEW editing_project_status_intervals AS
SELECT h.project_id,
       h.status,
       h.business_status,
       h.observed_at AS entered_at,
       n.observed_at AS left_at,
       EXTRACT(EPOCH FROM (n.observed_at - h.observed_at))::double precision AS duration_seconds,
       h.skipped_states AS skipped_on_entry,
       n.skipped_states AS skipped_on_exit
FROM editing_project_history h
LEFT JOIN editing_project_history n
       ON n.project_id = h.project_id AND n.seq = h.seq + 1 AND h.seq = n.seq - 1
WHERE h.event <> 'removed';

DROP TABLE editing_project_stretches;

CREATE VIEW editing_project_stretches AS
SELECT h.project_id,
       h.seq,
       h.status,
       h.business_status,
       h.observed_at AS entered_at,
       n.observed_at AS left_at,
       EXTRACT(EPOCH FROM (n.observed_at - h.observed_at))::double precision AS duration_seconds,
       h.skipped_states AS skipped_on_entry,
       n.skipped_states AS skipped_on_exit
FROM editing_project_history h
JOIN editing_project_history n
  ON n.project_id = h.project_id AND n.seq = h.seq + 1 AND h.seq = n.seq - 1
WHERE h.event <> 'removed';

-- What one new history row changes: the rollup of the stretch it ends (read from the row
-- before it), the daily counts, and a few times in a project's life its lead facts.
CREATE OR REPLACE FUNCTION editing_project_history_facts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- One statement for both rollups (each statement of a trigger function has a cost of
    -- its own): the stretch the row ends, read from the row before it, and the row's kind.
    WITH ended AS (
        INSERT INTO editing_project_stretch_days AS d
        SELECT (NEW.observed_at AT TIME ZONE 'UTC')::date, COALESCE(p.status, ''),
               COALESCE(p.business_status, ''), 1, x.seconds, x.seconds, pg_backend_pid() % 16
        FROM editing_project_history p
        CROSS JOIN LATERAL (SELECT EXTRACT(EPOCH FROM (NEW.observed_at - p.observed_at))::double precision
                            AS seconds) x
        WHERE NEW.seq > 1 AND p.project_id = NEW.project_id AND p.seq = NEW.seq - 1 AND p.event <> 'removed'
        ON CONFLICT (day, status, business_status, shard) DO UPDATE
        SET stretches = d.stretches + 1,
            total_seconds = d.total_seconds + EXCLUDED.total_seconds,
            max_seconds = GREATEST(d.max_seconds, EXCLUDED.max_seconds)
    )
    INSERT INTO editing_project_daily_counts AS c
    VALUES ((NEW.observed_at AT TIME ZONE 'UTC')::date, NEW.event,
            COALESCE(NEW.previous_status, ''), COALESCE(NEW.status, ''),
            COALESCE(NEW.previous_business_status, ''), COALESCE(NEW.business_status, ''), 1,
            pg_backend_pid() % 16)
    ON CONFLICT (day, event, from_status, to_status, from_business_status, to_business_status,
                 shard)
    DO UPDATE SET transitions = c.transitions + 1;

    -- Lead times, as in 0012.
    IF NEW.seq = 1 THEN
        INSERT INTO editing_project_lead_facts
        VALUES (NEW.project_id,
                CASE WHEN NEW.event = 'first_seen' THEN NEW.status END,
                NEW.observed_at,
                CASE WHEN NEW.status = 'Producing' THEN NEW.observed_at END,
                CASE WHEN NEW.status IN ('Produced', 'ProduceFailed') THEN NEW.observed_at END,
                CASE WHEN NEW.status IN ('Produced', 'ProduceFailed') THEN NEW.status END,
                CASE WHEN NEW.status = 'Producing' THEN 0::double precision END,
                NULL,
                CASE WHEN NEW.status IN ('Produced', 'ProduceFailed') THEN 0::double precision END)
        ON CONFLICT (project_id) DO NOTHING;
    ELSIF NEW.status = 'Producing' THEN
        UPDATE editing_project_lead_facts
        SET producing_at = NEW.observed_at, finished_at = NULL, outcome = NULL,
            seconds_to_producing = EXTRACT(EPOCH FROM (NEW.observed_at - first_seen_at))::double precision,
            seconds_producing = NULL, seconds_to_finished = NULL
        WHERE project_id = NEW.project_id AND producing_at IS NULL;
    ELSIF NEW.status IN ('Produced', 'ProduceFailed') THEN
        UPDATE editing_project_lead_facts
        SET finished_at = NEW.observed_at, outcome = NEW.status,
            seconds_producing = EXTRACT(EPOCH FROM (NEW.observed_at - producing_at))::double precision,
            seconds_to_finished = EXTRACT(EPOCH FROM (NEW.observed_at - first_seen_at))::double precision
        WHERE project_id = NEW.project_id
          AND (finished_at IS NULL
               OR (NEW.status = 'ProduceFailed' AND outcome = 'Produced'
                   AND finished_at = NEW.observed_at));
    END IF;
    RETURN NULL;
END
$$;

ALTER TABLE editing_project_history DROP CONSTRAINT editing_project_history_pkey;
ALTER TABLE editing_project_history REPLICA IDENTITY USING INDEX editing_project_history_seq_key;

-- Producing time percentiles over all finished projects (Q8) sorted every finished
-- project's duration by outcome, then again inside percentile_cont, spilling both sorts to
-- disk at the default work_mem (1.1 s at 10M history rows). Read in this index's order they
-- need one sort, the aggregate's own, and no table page (project_id is included because the
-- view's LEFT JOIN names it, even after the planner removed the join). Written only when a
-- project's first outcome is, about once in its life.
CREATE INDEX editing_project_lead_facts_outcome_idx
    ON editing_project_lead_facts (outcome, seconds_producing) INCLUDE (project_id)
    WHERE seconds_producing IS NOT NULL;

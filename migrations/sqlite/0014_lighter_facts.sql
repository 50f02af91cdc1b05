-- Lighter analytics facts: the same change as the PostgreSQL migration 0014 (see there for
-- why): editing_project_stretches becomes a view over history with the same name, columns
-- and rows, and the trigger no longer copies every finished stretch (on SQLite the copy was
-- a second B-tree of the whole history, written at every history row). Forward-only: never
-- edit a released migration, add one. (SQLite's id is the rowid: there is no id index to
-- drop here.)

DROP VIEW editing_project_status_intervals;
CREATE VIEW editing_project_status_intervals AS
SELECT h.project_id,
       h.status,
       h.business_status,
       h.observed_at AS entered_at,
       n.observed_at AS left_at,
       ROUND((julianday(n.observed_at) - julianday(h.observed_at)) * 86400, 3) AS duration_seconds,
       h.skipped_states AS skipped_on_entry,
       n.skipped_states AS skipped_on_exit
FROM editing_project_history h
LEFT JOIN editing_project_history n ON n.project_id = h.project_id AND n.seq = h.seq + 1
WHERE h.event <> 'removed';

DROP TABLE editing_project_stretches;

CREATE VIEW editing_project_stretches AS
SELECT h.project_id,
       h.seq,
       h.status,
       h.business_status,
       h.observed_at AS entered_at,
       n.observed_at AS left_at,
       ROUND((julianday(n.observed_at) - julianday(h.observed_at)) * 86400, 3) AS duration_seconds,
       h.skipped_states AS skipped_on_entry,
       n.skipped_states AS skipped_on_exit
FROM editing_project_history h
JOIN editing_project_history n ON n.project_id = h.project_id AND n.seq = h.seq + 1
WHERE h.event <> 'removed';

-- What one new history row changes: the rollup of the stretch it ends (read from the row
-- before it), the daily counts, and a few times in a project's life its lead facts.
DROP TRIGGER editing_project_history_facts;
CREATE TRIGGER editing_project_history_facts
AFTER INSERT ON editing_project_history
BEGIN
    INSERT INTO editing_project_stretch_days (day, status, business_status, stretches,
        total_seconds, max_seconds)
    SELECT substr(NEW.observed_at, 1, 10), COALESCE(p.status, ''), COALESCE(p.business_status, ''),
           1, ROUND((julianday(NEW.observed_at) - julianday(p.observed_at)) * 86400, 3),
           ROUND((julianday(NEW.observed_at) - julianday(p.observed_at)) * 86400, 3)
    FROM editing_project_history p
    WHERE p.project_id = NEW.project_id AND p.seq = NEW.seq - 1 AND p.event <> 'removed'
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

    -- Lead times, as in 0012.
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

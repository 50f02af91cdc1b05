-- Gap flags and staleness: the same columns, view and index as the PostgreSQL migration
-- 0005 (see there for what they mean).

ALTER TABLE editing_project_history ADD COLUMN skipped_states TEXT;

DROP VIEW editing_project_status_intervals;
CREATE VIEW editing_project_status_intervals AS
SELECT project_id,
       status,
       business_status,
       entered_at,
       left_at,
       ROUND((julianday(left_at) - julianday(entered_at)) * 86400, 3) AS duration_seconds,
       skipped_on_entry,
       skipped_on_exit
FROM (
    SELECT h.project_id,
           h.event,
           h.status,
           h.business_status,
           h.observed_at AS entered_at,
           LEAD(h.observed_at) OVER (PARTITION BY h.project_id ORDER BY h.seq) AS left_at,
           h.skipped_states AS skipped_on_entry,
           LEAD(h.skipped_states) OVER (PARTITION BY h.project_id ORDER BY h.seq) AS skipped_on_exit
    FROM editing_project_history h
) s
WHERE event <> 'removed';

CREATE INDEX tracked_projects_observed_idx
    ON tracked_projects (every_tick, COALESCE(last_attempt_at, added_at))
    WHERE enabled;

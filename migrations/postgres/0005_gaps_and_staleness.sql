-- Gap flags and staleness. Forward-only: never edit a released migration, add one.

-- The states of the known lifecycle a change jumped over between two polls
-- (comma-separated, lifecycle order, e.g. 'Producing' for Editing -> Produced), NULL when
-- it skipped none or when either side is outside the known lifecycle. Rows written before
-- this migration stay NULL: nobody computed it for them.
ALTER TABLE editing_project_history ADD COLUMN skipped_states text;

-- The intervals view gains the gaps on both ends of each stretch:
-- * skipped_on_entry: states passed through unobserved just before this stretch began;
-- * skipped_on_exit: states passed through unobserved after it, so the project left it
--   earlier than left_at and a state is missing from the sequence (polling misses the
--   short ones: statistics of the missed state are biased towards long stays).
-- Columns can only be appended to a view in place, which keeps 0001's six as they are.
CREATE OR REPLACE VIEW editing_project_status_intervals AS
SELECT project_id,
       status,
       business_status,
       entered_at,
       left_at,
       EXTRACT(EPOCH FROM (left_at - entered_at))::double precision AS duration_seconds,
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

-- Staleness gauges read the oldest observation (last poll attempt, or when tracking began
-- for a project never polled) among enabled projects, split by every_tick: two probes of
-- this index per scrape, whatever the number of projects.
CREATE INDEX tracked_projects_observed_idx
    ON tracked_projects (every_tick, (COALESCE(last_attempt_at, added_at)))
    WHERE enabled;

-- ice-sync analytics, SQLite: views for BI tools (Grafana, Metabase, Superset, sqlite3) and
-- the indexes that keep them and "the history of one project" index-driven at millions of
-- rows. Forward-only: never edit a released migration, add one.
--
-- migrations/postgres/0002_analytics.sql defines the same views with the same columns and
-- meanings; tests/analytics loads one fixture into both backends and requires the same rows.
-- Conventions of every view here:
-- * timestamps are the tables' own 'YYYY-MM-DDTHH:MM:SS.mmmZ' text (timestamptz on PostgreSQL);
-- * durations are REAL seconds, exact to the millisecond: julianday() differences rounded to
--   3 decimals, which is the same double PostgreSQL's exact EXTRACT(EPOCH) gives. julianday()
--   works in every SQLite, unlike unixepoch(..., 'subsec') (3.42+; older ones, such as
--   Debian 12's sqlite3 3.40, silently return NULL for it);
-- * a UTC day is 'YYYY-MM-DD' text (a `date` on PostgreSQL): both compare with a
--   'YYYY-MM-DD' literal and sort the same way;
-- * "now" is read from analytics_clock and from nowhere else.

-- The one definition of "now" for analytics, in the stored timestamps' format, with the
-- horizons dashboards ask about. `observed_at >= (SELECT day_ago FROM analytics_clock)` is
-- how a query says "in the last 24 hours" on both backends. Tests pin it to a fixed instant
-- by dropping and recreating it (same columns).
CREATE VIEW analytics_clock AS
SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS now_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') AS hour_ago,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day') AS day_ago,
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-7 days') AS week_ago;

-- editing_project_status_intervals (0001) computed durations as a difference of
-- unixepoch(..., 'subsec') values: float noise at millisecond precision (600.1229999 where
-- PostgreSQL says 600.123) and NULL under SQLite < 3.42. Same columns and rows, fixed.
DROP VIEW editing_project_status_intervals;
CREATE VIEW editing_project_status_intervals AS
SELECT project_id,
       status,
       business_status,
       entered_at,
       left_at,
       ROUND((julianday(left_at) - julianday(entered_at)) * 86400, 3) AS duration_seconds
FROM (
    SELECT h.project_id,
           h.event,
           h.status,
           h.business_status,
           h.observed_at AS entered_at,
           LEAD(h.observed_at) OVER (PARTITION BY h.project_id ORDER BY h.seq) AS left_at
    FROM editing_project_history h
) s
WHERE event <> 'removed';

-- How many projects are in each (project_type, status, business_status) right now.
-- Removed projects are excluded; a project that returned counts again.
CREATE VIEW editing_project_status_summary AS
SELECT project_type,
       status,
       business_status,
       COUNT(*) AS projects
FROM editing_projects
WHERE removed_at IS NULL
GROUP BY project_type, status, business_status;

-- Every present project with the moment it entered its current (status, business_status)
-- pair and how long it has been there: the "stuck" question (`status = 'Producing' AND
-- seconds_in_status > 3600`) without window functions. `since` is the observed_at of the
-- project's latest history row (editing_projects.history_seq), i.e. when the current pair was
-- first observed; it is not moved by ModifiedTime-only changes. last_polled_at says how fresh
-- that knowledge is: a project nobody polled for a day is not necessarily stuck.
CREATE VIEW editing_project_current_status AS
SELECT p.project_id,
       p.project_type,
       p.title,
       p.status,
       p.business_status,
       h.observed_at AS since,
       ROUND((julianday(c.now_at) - julianday(h.observed_at)) * 86400, 3) AS seconds_in_status,
       p.last_polled_at
FROM editing_projects p
JOIN editing_project_history h ON h.project_id = p.project_id AND h.seq = p.history_seq
CROSS JOIN analytics_clock c
WHERE p.removed_at IS NULL;

-- "How long does producing take?", one row per project that has history:
-- * first_seen_at, first_status: the first observation (a project first seen already
--   Produced has no lead time to speak of: filter on first_status or producing_at);
-- * producing_at: the first observation in Producing (NULL if never seen there: polling can
--   miss a short Producing, see the README);
-- * finished_at, outcome: the first Produced or ProduceFailed observed after producing_at, or,
--   if Producing was never seen, the first one at all. A retry after ProduceFailed does not
--   move it: the first attempt's outcome is what it reports;
-- * seconds_to_producing, seconds_producing, seconds_to_finished: the gaps between them, NULL
--   where an end is missing.
-- Live projects (Status stays Editing) appear with producing/finished NULL.
CREATE VIEW editing_project_lead_times AS
WITH firsts AS (
    -- One pass over each project's rows (the WHERE of a query on this view reaches it, so
    -- one project reads one index range). observed_at grows with seq within a project, so
    -- the MIN(observed_at) of some of its rows is the observed_at of the earliest of them.
    -- The Producing lookup is evaluated for finish rows only (CASE stops at the status test).
    SELECT h.project_id,
           MIN(CASE WHEN h.event = 'first_seen' THEN h.status END) AS first_status,
           MIN(h.observed_at) AS first_seen_at,
           MIN(CASE WHEN h.status = 'Producing' THEN h.observed_at END) AS producing_at,
           MIN(CASE WHEN h.status = 'Produced'
                     AND h.seq > COALESCE((SELECT MIN(x.seq) FROM editing_project_history x
                                           WHERE x.project_id = h.project_id
                                             AND x.status = 'Producing'), 0)
                    THEN h.observed_at END) AS produced_at,
           MIN(CASE WHEN h.status = 'ProduceFailed'
                     AND h.seq > COALESCE((SELECT MIN(x.seq) FROM editing_project_history x
                                           WHERE x.project_id = h.project_id
                                             AND x.status = 'Producing'), 0)
                    THEN h.observed_at END) AS failed_at
    FROM editing_project_history h
    GROUP BY h.project_id
), ends AS (
    SELECT project_id,
           first_status,
           first_seen_at,
           producing_at,
           CASE WHEN failed_at IS NULL OR produced_at < failed_at THEN produced_at
                ELSE failed_at END AS finished_at,
           CASE WHEN produced_at IS NOT NULL AND (failed_at IS NULL OR produced_at < failed_at)
                    THEN 'Produced'
                WHEN failed_at IS NOT NULL THEN 'ProduceFailed' END AS outcome
    FROM firsts
)
SELECT e.project_id,
       p.project_type,
       e.first_status,
       e.first_seen_at,
       e.producing_at,
       e.finished_at,
       e.outcome,
       ROUND((julianday(e.producing_at) - julianday(e.first_seen_at)) * 86400, 3) AS seconds_to_producing,
       ROUND((julianday(e.finished_at) - julianday(e.producing_at)) * 86400, 3) AS seconds_producing,
       ROUND((julianday(e.finished_at) - julianday(e.first_seen_at)) * 86400, 3) AS seconds_to_finished
FROM ends e
LEFT JOIN editing_projects p ON p.project_id = e.project_id;

-- Per UTC day and kind of change, how many history rows: "what happened when". from_* are
-- NULL for first_seen and returned rows, to_* are NULL for removed rows; a live project's
-- business-status change keeps from_status = to_status = 'Editing'. For production
-- outcomes count `event = 'changed'` rows only: a project first seen already ProduceFailed
-- did not fail that day.
CREATE VIEW editing_project_daily_transitions AS
SELECT substr(observed_at, 1, 10) AS day,
       event,
       previous_status AS from_status,
       status AS to_status,
       previous_business_status AS from_business_status,
       business_status AS to_business_status,
       COUNT(*) AS transitions
FROM editing_project_history
GROUP BY 1, 2, 3, 4, 5, 6;

-- Indexes. "The history of one project" (WHERE project_id = ... ORDER BY seq) and the
-- per-project views are served by the UNIQUE (project_id, seq) key of 0001, and time windows
-- over history (observed_at >= ...) by editing_project_history_observed_idx.

-- Present projects by status: editing_project_status_summary reads only this index, and
-- "projects in status X" (stuck, live by business status) starts from it instead of
-- scanning every project ever seen. removed_at (always NULL here) is in the key only so that
-- SQLite sees the index as covering for `WHERE removed_at IS NULL` and skips the table.
CREATE INDEX editing_projects_present_status_idx
    ON editing_projects (status, business_status, project_type, removed_at)
    WHERE removed_at IS NULL;

-- A range of days in editing_project_daily_transitions (`WHERE day >= '2030-01-01'`) is pushed
-- down to the history scan as this exact expression, which this index serves.
CREATE INDEX editing_project_history_day_idx
    ON editing_project_history (substr(observed_at, 1, 10));

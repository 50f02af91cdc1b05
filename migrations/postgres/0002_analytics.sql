-- ice-sync analytics, PostgreSQL: views for BI tools (Grafana, Metabase, Superset) and the
-- indexes that keep them and "the history of one project" index-driven at millions of rows.
-- Forward-only: never edit a released migration, add one.
--
-- migrations/sqlite/0002_analytics.sql defines the same views with the same columns and
-- meanings; tests/analytics loads one fixture into both backends and requires the same rows.
-- Conventions of every view here:
-- * timestamps are the tables' own type (timestamptz here, fixed-width UTC text on SQLite);
-- * durations are double precision seconds, exact to the millisecond (EXTRACT(EPOCH) of an
--   interval is an exact decimal; SQLite rounds its float arithmetic to the same value);
-- * a UTC day is a `date` here and 'YYYY-MM-DD' text on SQLite: both compare with a
--   'YYYY-MM-DD' literal and sort the same way;
-- * counts are `integer`, so that SUM() over them is a bigint on PostgreSQL (SUM of a
--   bigint would be numeric) and users' totals read the same on both backends;
-- * "now" is read from analytics_clock and from nowhere else.

-- The one definition of "now" for analytics, truncated to the millisecond like every stored
-- timestamp, with the horizons dashboards ask about. Portable SQL cannot subtract an interval
-- (PostgreSQL and SQLite spell it differently), so `observed_at >= (SELECT day_ago FROM
-- analytics_clock)` is how a query says "in the last 24 hours" on both backends. Tests pin it
-- to a fixed instant with CREATE OR REPLACE VIEW (same columns and types).
CREATE VIEW analytics_clock AS
SELECT now_at,
       now_at - INTERVAL '1 hour' AS hour_ago,
       now_at - INTERVAL '1 day' AS day_ago,
       now_at - INTERVAL '7 days' AS week_ago
FROM (SELECT date_trunc('milliseconds', CURRENT_TIMESTAMP) AS now_at) n;

-- editing_project_status_intervals (0001) is correct here and stays as it is: EXTRACT(EPOCH)
-- of an interval is exact, and the LEAD over seq is pushed down to one project's rows by
-- `WHERE project_id = ...` (project_id is its PARTITION BY key).

-- How many projects are in each (project_type, status, business_status) right now.
-- Removed projects are excluded; a project that returned counts again.
CREATE VIEW editing_project_status_summary AS
SELECT project_type,
       status,
       business_status,
       COUNT(*)::integer AS projects
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
       EXTRACT(EPOCH FROM (c.now_at - h.observed_at))::double precision AS seconds_in_status,
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
       EXTRACT(EPOCH FROM (e.producing_at - e.first_seen_at))::double precision AS seconds_to_producing,
       EXTRACT(EPOCH FROM (e.finished_at - e.producing_at))::double precision AS seconds_producing,
       EXTRACT(EPOCH FROM (e.finished_at - e.first_seen_at))::double precision AS seconds_to_finished
FROM ends e
LEFT JOIN editing_projects p ON p.project_id = e.project_id;

-- Per UTC day and kind of change, how many history rows: "what happened when". from_* are
-- NULL for first_seen and returned rows, to_* are NULL for removed rows; a live project's
-- business-status change keeps from_status = to_status = 'Editing'. For production
-- outcomes count `event = 'changed'` rows only: a project first seen already ProduceFailed
-- did not fail that day.
CREATE VIEW editing_project_daily_transitions AS
SELECT (observed_at AT TIME ZONE 'UTC')::date AS day,
       event,
       previous_status AS from_status,
       status AS to_status,
       previous_business_status AS from_business_status,
       business_status AS to_business_status,
       COUNT(*)::integer AS transitions
FROM editing_project_history
GROUP BY 1, 2, 3, 4, 5, 6;

-- Indexes. "The history of one project" (WHERE project_id = ... ORDER BY seq) and the
-- per-project views are served by the UNIQUE (project_id, seq) key of 0001, and time windows
-- over history (observed_at >= ...) by editing_project_history_observed_idx.

-- The unique key also carries observed_at, so editing_project_current_status finds when each
-- project entered its current pair from the index alone. Without it, "stuck in Producing"
-- at 1M history rows hash-joins the whole history table (about 600 ms) instead of probing
-- one index entry per project in Producing (docs/analytics.md has the plans). Same name,
-- same key, same guarantee; one transaction, so there is no moment without the constraint.
ALTER TABLE editing_project_history
    DROP CONSTRAINT editing_project_history_seq_key,
    ADD CONSTRAINT editing_project_history_seq_key UNIQUE (project_id, seq) INCLUDE (observed_at);

-- Present projects by status: editing_project_status_summary reads only this index, and
-- "projects in status X" (stuck, live by business status) starts from it instead of
-- scanning every project ever seen.
CREATE INDEX editing_projects_present_status_idx
    ON editing_projects (status, business_status, project_type)
    WHERE removed_at IS NULL;

-- A range of days in editing_project_daily_transitions (`WHERE day >= '2030-01-01'`) is pushed
-- down to the history scan as this exact expression, which this index serves.
CREATE INDEX editing_project_history_day_idx
    ON editing_project_history (((observed_at AT TIME ZONE 'UTC')::date));

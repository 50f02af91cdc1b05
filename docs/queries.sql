-- ice-sync: the questions users ask most, as SQL you can paste into psql, sqlite3, Metabase,
-- Grafana or Superset. Every query runs unchanged on PostgreSQL and SQLite and gives the same
-- answer on both, except Q8 (percentiles), which is PostgreSQL only.
--
-- The views they use are described in docs/analytics.md. Things worth knowing:
-- * "now" comes from the analytics_clock view (now_at, hour_ago, day_ago, week_ago), so
--   "in the last 24 hours" is `FROM analytics_clock c CROSS JOIN editing_project_history h
--   WHERE h.observed_at >= c.day_ago` on both backends (Q6 says why this form);
-- * durations are seconds (double precision), exact to the millisecond;
-- * `day` is a UTC day: a date on PostgreSQL, 'YYYY-MM-DD' text on SQLite; compare it with
--   a 'YYYY-MM-DD' literal;
-- * ORDER BY a column that can be NULL uses COALESCE: PostgreSQL sorts NULLs last, SQLite
--   first. Text sorts by the database's collation (PostgreSQL with a non-C collation may
--   put Produced before ProduceFailed; SQLite never does).
--
-- Under each query: its answer on the demo data, as of one run of
-- `cargo run --release -- demo` (seed 7, 240 regular + 60 live projects, a cycle every 2 s
-- for 30 s). The demo's story is seeded but its timing is not, so another run gives similar,
-- not identical, numbers. Durations there are seconds, because the demo is half a minute.
-- tests/it/analytics runs every query here against a hand-written history on both backends
-- and checks the exact rows (tests/it/analytics/queries.rs lists them).
--
-- Each query below starts at a "-- Qn." line and ends at the first line ending in ";".


-- Q1. Where are my projects right now?
-- Present projects per type and (status, business status). Removed projects are not counted.
SELECT project_type, status, business_status, projects
FROM editing_project_status_summary
ORDER BY projects DESC, project_type, status, COALESCE(business_status, '');
-- Demo answer:
--   project_type       | status        | business_status     | projects
--   -------------------+---------------+---------------------+---------
--   EditingProject     | Produced      | NULL                | 113
--   EditingProject     | Producing     | NULL                | 52
--   LiveEditingProject | Editing       | LiveFinished        | 46
--   EditingProject     | Editing       | NULL                | 40
--   EditingProject     | ProduceFailed | NULL                | 25
--   EditingProject     | Draft         | NULL                | 10
--   LiveEditingProject | Editing       | BroadCasting        | 6
--   LiveEditingProject | Editing       | Reserving           | 5
--   LiveEditingProject | Editing       | ReservationCanceled | 3


-- Q2. How long do projects stay in each status?
-- Finished stretches only (the current one of each project is still running: see Q3).
-- Read from editing_project_stretch_days, the per-day rollup the writer keeps ('' there
-- stands for NULL): the same answer as aggregating editing_project_status_intervals
-- WHERE left_at IS NOT NULL, in a millisecond at any size. Add `WHERE day >= '2030-01-01'`
-- for stretches that ended in a range of UTC days.
SELECT status, NULLIF(business_status, '') AS business_status,
       SUM(stretches) AS stretches,
       SUM(total_seconds) / SUM(stretches) AS avg_seconds,
       MAX(max_seconds) AS max_seconds
FROM editing_project_stretch_days
GROUP BY status, business_status
ORDER BY status, COALESCE(NULLIF(business_status, ''), '');
-- Demo answer:
--   status    | business_status | stretches | avg_seconds | max_seconds
--   ----------+-----------------+-----------+-------------+------------
--   Draft     | NULL            | 230       | 8.247       | 28.021
--   Editing   | NULL            | 190       | 6.971       | 24.018
--   Editing   | BroadCasting    | 46        | 6.435       | 19.993
--   Editing   | Reserving       | 55        | 9.032       | 22.019
--   Producing | NULL            | 138       | 6.147       | 20.017


-- Q3. Which projects are stuck in Producing for more than an hour?
-- last_polled_at tells whether the information is fresh: a project nobody polled lately may
-- have finished since.
SELECT project_id, title, since, seconds_in_status, last_polled_at
FROM editing_project_current_status
WHERE status = 'Producing' AND seconds_in_status > 3600
ORDER BY seconds_in_status DESC, project_id;
-- Demo answer:
--   (no rows: the demo lasts 30 seconds, so nothing has been Producing for an hour)


-- Q4. What is the production failure rate per day?
-- Productions that ended that day (UTC), by outcome. Only `changed` rows count: a project
-- first seen already ProduceFailed did not fail that day.
SELECT day,
       SUM(CASE WHEN to_status = 'Produced' THEN transitions ELSE 0 END) AS produced,
       SUM(CASE WHEN to_status = 'ProduceFailed' THEN transitions ELSE 0 END) AS failed,
       CAST(SUM(CASE WHEN to_status = 'ProduceFailed' THEN transitions ELSE 0 END)
            AS double precision) * 100 / SUM(transitions) AS failed_pct
FROM editing_project_daily_transitions
WHERE event = 'changed' AND to_status IN ('Produced', 'ProduceFailed')
GROUP BY day
ORDER BY day;
-- Demo answer:
--   day        | produced | failed | failed_pct
--   -----------+----------+--------+-----------
--   2026-11-29 | 113      | 25     | 18.116


-- Q5. How many live projects are in each business status?
SELECT business_status, SUM(projects) AS projects
FROM editing_project_status_summary
WHERE project_type = 'LiveEditingProject'
GROUP BY business_status
ORDER BY projects DESC, COALESCE(business_status, '');
-- Demo answer:
--   business_status     | projects
--   --------------------+---------
--   LiveFinished        | 46
--   BroadCasting        | 6
--   Reserving           | 5
--   ReservationCanceled | 3


-- Q6. Which projects changed in the last 24 hours?
-- The 20 most recent; a first sighting, a removal and a return count as changes too.
-- The last day of history is aggregated and cut to 20 before anything is joined to it, and
-- the bound is a join with analytics_clock rather than a scalar subquery: PostgreSQL then
-- plans with the real bound (a subquery's value is unknown when it plans), and SQLite,
-- which takes the left side of a CROSS JOIN as the outer loop, reads the clock first and
-- the history index from that instant.
WITH recent AS (
    SELECT h.project_id, COUNT(*) AS changes, MAX(h.observed_at) AS last_change
    FROM analytics_clock c
    CROSS JOIN editing_project_history h
    WHERE h.observed_at >= c.day_ago
    GROUP BY h.project_id
    ORDER BY last_change DESC, h.project_id
    LIMIT 20
)
SELECT r.project_id, r.changes, r.last_change, p.status, p.business_status, p.removed_at
FROM recent r
JOIN editing_projects p ON p.project_id = r.project_id
ORDER BY r.last_change DESC, r.project_id;
-- Demo answer:
--   project_id                       | changes | last_change              | status        | business_status | removed_at
--   ---------------------------------+---------+--------------------------+---------------+-----------------+-----------
--   f612b2913b0a9ddd0f8005159f7f8d06 | 3       | 2026-11-29T14:36:11.832Z | Producing     | NULL            | NULL
--   f98deb1fd5b34aa048e12b9e5a99041c | 4       | 2026-11-29T14:36:11.832Z | Produced      | NULL            | NULL
--   e1a88cae4a4e51bec74639c9428f593d | 3       | 2026-11-29T14:36:11.817Z | Producing     | NULL            | NULL
--   d65f306e9981d6e13231554e11e45e33 | 3       | 2026-11-29T14:36:11.814Z | Editing       | LiveFinished    | NULL
--   d4336695b89e9cf85a7cb6652c63f894 | 4       | 2026-11-29T14:36:11.813Z | Produced      | NULL            | NULL
--   a733e90a629204d4f6e28684c0c8622a | 3       | 2026-11-29T14:36:11.812Z | Producing     | NULL            | NULL
--   90706d1a3f62a87ed2b35d07b99a58a0 | 2       | 2026-11-29T14:36:11.809Z | Editing       | NULL            | NULL
--   a1a4fea1b264d8b7c7c7c7cecefed6ee | 4       | 2026-11-29T14:36:11.809Z | Produced      | NULL            | NULL
--   a2583815a8922b7563714c09f4389796 | 3       | 2026-11-29T14:36:11.809Z | Producing     | NULL            | NULL
--   77d64de5774ae6a6134591709323d85e | 3       | 2026-11-29T14:36:11.808Z | Producing     | NULL            | NULL
--   7ed2363300b8e0c392d6db0698325ccf | 4       | 2026-11-29T14:36:11.808Z | Produced      | NULL            | NULL
--   7f0ca1dc0276ac47e139eff9709e9d70 | 3       | 2026-11-29T14:36:11.808Z | Producing     | NULL            | NULL
--   8ae2cdee8f4db5416dc015ac398a957d | 4       | 2026-11-29T14:36:11.808Z | ProduceFailed | NULL            | NULL
--   5e3320663fc65d75a38d7fb588da8221 | 4       | 2026-11-29T14:36:11.806Z | Produced      | NULL            | NULL
--   629b679baa679a74781fcbb846bf63da | 3       | 2026-11-29T14:36:11.806Z | Producing     | NULL            | NULL
--   6af5747f66a6d9a98875b9822c1ba093 | 3       | 2026-11-29T14:36:11.806Z | Producing     | NULL            | NULL
--   710cc9ab3ecbcac70f0ebe5a52d4042e | 3       | 2026-11-29T14:36:11.806Z | Editing       | LiveFinished    | NULL
--   715bca73c9c85dea372996bc38f53614 | 4       | 2026-11-29T14:36:11.806Z | Produced      | NULL            | NULL
--   4e4ac9747af41724d6b1f8563d7d449a | 2       | 2026-11-29T14:36:11.805Z | Editing       | NULL            | NULL
--   504e16d032261d7313cbfcffd3dad99e | 4       | 2026-11-29T14:36:11.805Z | ProduceFailed | NULL            | NULL


-- Q7. How long does producing take?
-- From the first Producing seen to the first Produced or ProduceFailed after it, per outcome.
SELECT outcome,
       COUNT(*) AS projects,
       AVG(seconds_producing) AS avg_seconds,
       MIN(seconds_producing) AS min_seconds,
       MAX(seconds_producing) AS max_seconds
FROM editing_project_lead_times
WHERE seconds_producing IS NOT NULL
GROUP BY outcome
ORDER BY outcome;
-- Demo answer:
--   outcome       | projects | avg_seconds | min_seconds | max_seconds
--   --------------+----------+-------------+-------------+------------
--   ProduceFailed | 25       | 6.081       | 1.988       | 18.017
--   Produced      | 113      | 6.162       | 1.985       | 20.017


-- Q8. Producing time percentiles (PostgreSQL only: SQLite has no percentile_cont).
SELECT outcome,
       COUNT(*) AS projects,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_producing) AS p50_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds_producing) AS p90_seconds,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds_producing) AS p99_seconds
FROM editing_project_lead_times
WHERE seconds_producing IS NOT NULL
GROUP BY outcome
ORDER BY outcome;
-- Demo answer (the demo data copied into PostgreSQL):
--   outcome       | projects | p50_seconds | p90_seconds | p99_seconds
--   --------------+----------+-------------+-------------+------------
--   ProduceFailed | 25       | 4           | 12.011      | 16.576
--   Produced      | 113      | 4.01        | 13.6        | 18.008


-- Q9. What happened to one project? (put your project ID in)
SELECT seq, observed_at, event, previous_status, status,
       previous_business_status, business_status
FROM editing_project_history
WHERE project_id = '8ae2cdee8f4db5416dc015ac398a957d'
ORDER BY seq;
-- Demo answer:
--   seq | observed_at              | event      | previous_status | status        | previous_business_status | business_status
--   ----+--------------------------+------------+-----------------+---------------+--------------------------+----------------
--   1   | 2026-11-29T14:35:43.788Z | first_seen | NULL            | Draft         | NULL                     | NULL
--   2   | 2026-11-29T14:35:51.791Z | changed    | Draft           | Editing       | NULL                     | NULL
--   3   | 2026-11-29T14:36:09.808Z | changed    | Editing         | Producing     | NULL                     | NULL
--   4   | 2026-11-29T14:36:11.808Z | changed    | Producing       | ProduceFailed | NULL                     | NULL


-- Q10. What happened each day?
-- New projects, status changes, removals and returns per UTC day.
SELECT day,
       SUM(CASE WHEN event = 'first_seen' THEN transitions ELSE 0 END) AS new_projects,
       SUM(CASE WHEN event = 'changed' THEN transitions ELSE 0 END) AS changes,
       SUM(CASE WHEN event = 'removed' THEN transitions ELSE 0 END) AS removed,
       SUM(CASE WHEN event = 'returned' THEN transitions ELSE 0 END) AS returned
FROM editing_project_daily_transitions
GROUP BY day
ORDER BY day;
-- Demo answer:
--   day        | new_projects | changes | removed | returned
--   -----------+--------------+---------+---------+---------
--   2026-11-29 | 300          | 659     | 0       | 0


-- Q11. Why did productions fail last week, by error code and template?
-- From the producing jobs (editing_project_productions): ICE's Code of each failed job that
-- ended in the last 7 days. Jobs without a template (timeline productions) show '(none)'.
SELECT code,
       COALESCE(template_id, '(none)') AS template_id,
       COUNT(*) AS failures,
       COUNT(DISTINCT project_id) AS projects
FROM editing_project_productions
WHERE outcome = 'failed'
  AND complete_time >= (SELECT week_ago FROM analytics_clock)
GROUP BY code, COALESCE(template_id, '(none)')
ORDER BY failures DESC, code, template_id;
-- Demo answer (the demo's projects use no template):
--   code                       | template_id | failures | projects
--   ---------------------------+-------------+----------+---------
--   ProduceTimelineFormatError | (none)      | 13       | 13
--   QueryMaterialFailed        | (none)      | 7        | 7
--   InvalidMaterial.NotFound   | (none)      | 5        | 5


-- Q12. How long does a production take, by template and outcome?
-- ICE's own CompleteTime - CreateTime of each finished job: exact, unlike Q7, whose
-- durations depend on when the projects were polled.
SELECT COALESCE(template_id, '(none)') AS template_id,
       outcome,
       COUNT(*) AS jobs,
       AVG(production_seconds) AS avg_seconds,
       MIN(production_seconds) AS min_seconds,
       MAX(production_seconds) AS max_seconds
FROM editing_project_productions
WHERE production_seconds IS NOT NULL
GROUP BY COALESCE(template_id, '(none)'), outcome
ORDER BY template_id, outcome;
-- Demo answer:
--   template_id | outcome | jobs | avg_seconds | min_seconds | max_seconds
--   ------------+---------+------+-------------+-------------+------------
--   (none)      | failed  | 25   | 6.08        | 2           | 18
--   (none)      | success | 113  | 6.159       | 2           | 20


-- Q13. Production time percentiles by template (PostgreSQL only: SQLite has no percentile_cont).
-- Successful productions only: p50 and p95 seconds from CreateTime to CompleteTime.
SELECT COALESCE(template_id, '(none)') AS template_id,
       COUNT(*) AS jobs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY production_seconds) AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY production_seconds) AS p95_seconds
FROM editing_project_productions
WHERE outcome = 'success'
GROUP BY COALESCE(template_id, '(none)')
ORDER BY template_id;

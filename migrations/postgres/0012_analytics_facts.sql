-- Analytics facts kept by the writer: the views of 0002/0005 read small tables instead of
-- rebuilding every project's stretches from all of history on every query.
-- Forward-only: never edit a released migration, add one.
--
-- One trigger on editing_project_history maintains them, so every history row (the daemon's,
-- an import's, a test fixture's) changes its facts in its own transaction: a crash leaves
-- both or neither. Each row costs a few index probes and inserts, and touches rows of its own
-- project only, except for the two per-day rollups (see below).
--
-- * editing_project_stretches: one row per *finished* stretch, written when the history row
--   that ends it arrives (insert-only: no row is ever updated, so no index churn and no dead
--   tuples). The current stretch of each project is its latest history row, which
--   editing_project_rows.history_seq names; editing_project_status_intervals is the union.
-- * editing_project_lead_facts: per project, the first sighting, the first Producing and the
--   first outcome after it (the definitions of editing_project_lead_times, 0002); written at
--   the first row, then updated at most a few times in a project's life.
-- * editing_project_daily_counts: history rows per (UTC day, kind of change), the rows of
--   editing_project_daily_transitions. NULL is stored as '' so that the key can be a plain
--   primary key on every PostgreSQL (the view turns it back into NULL).
-- * editing_project_stretch_days: finished stretches per (UTC day they ended, status pair):
--   count, total and maximum duration; "how long do projects stay in each status" (Q2) sums
--   a few hundred rows instead of reading every stretch.
-- The two rollups are the only rows that different projects' writes share. A transaction
-- holds the rows it upserted until it commits, so each rollup row is split in 16 shards, one
-- per writing session (pg_backend_pid() % 16): replicas writing at once upsert different
-- rows instead of queueing behind each other's commits. Readers sum the shards (the views
-- and Q2 aggregate anyway); the backfill writes shard 0.

-- History written while this migration runs must not slip between the backfill and the
-- trigger: writers wait for the commit.
LOCK TABLE editing_project_history IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE editing_project_stretches (
    project_id       text NOT NULL,
    seq              bigint NOT NULL,  -- the history row that began the stretch
    status           text,
    business_status  text,
    entered_at       timestamptz NOT NULL,
    left_at          timestamptz NOT NULL,
    duration_seconds double precision NOT NULL,
    skipped_on_entry text,
    skipped_on_exit  text,
    PRIMARY KEY (project_id, seq)
);

CREATE TABLE editing_project_lead_facts (
    project_id    text PRIMARY KEY,
    first_status  text,
    first_seen_at timestamptz NOT NULL,
    producing_at  timestamptz,
    finished_at   timestamptz,
    outcome       text,
    -- The view's durations, stored: computing them on every read cost more than the
    -- whole rest of "how long does producing take" at a million projects.
    seconds_to_producing double precision,
    seconds_producing    double precision,
    seconds_to_finished  double precision
);

CREATE TABLE editing_project_daily_counts (
    day                  date NOT NULL,
    event                text NOT NULL,
    from_status          text NOT NULL,  -- '' for NULL, here and below
    to_status            text NOT NULL,
    from_business_status text NOT NULL,
    to_business_status   text NOT NULL,
    transitions          integer NOT NULL,
    shard                smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, event, from_status, to_status, from_business_status, to_business_status, shard)
);

CREATE TABLE editing_project_stretch_days (
    day             date NOT NULL,     -- the UTC day the stretches ended
    status          text NOT NULL,
    business_status text NOT NULL,     -- '' for NULL
    stretches       integer NOT NULL,
    total_seconds   double precision NOT NULL,
    max_seconds     double precision NOT NULL,
    shard           smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, status, business_status, shard)
);

-- Backfill from the history already there, with the definitions the views used until now.
INSERT INTO editing_project_stretches
SELECT project_id, seq, status, business_status, entered_at, left_at,
       EXTRACT(EPOCH FROM (left_at - entered_at))::double precision,
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
SELECT (left_at AT TIME ZONE 'UTC')::date, COALESCE(status, ''), COALESCE(business_status, ''),
       COUNT(*)::integer, SUM(duration_seconds), MAX(duration_seconds)
FROM editing_project_stretches
GROUP BY 1, 2, 3;

-- The writer's side: what one new history row changes.
CREATE FUNCTION editing_project_history_facts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The row ends the stretch its predecessor began (none after a removal).
    WITH ended AS (
        INSERT INTO editing_project_stretches
        SELECT p.project_id, p.seq, p.status, p.business_status, p.observed_at, NEW.observed_at,
               EXTRACT(EPOCH FROM (NEW.observed_at - p.observed_at))::double precision,
               p.skipped_states, NEW.skipped_states
        FROM editing_project_history p
        WHERE p.project_id = NEW.project_id AND p.seq = NEW.seq - 1 AND p.event <> 'removed'
        -- Only a hand-edited history can meet an existing stretch: never fail the writer.
        ON CONFLICT (project_id, seq) DO NOTHING
        RETURNING status, business_status, duration_seconds
    )
    INSERT INTO editing_project_stretch_days AS d
    SELECT (NEW.observed_at AT TIME ZONE 'UTC')::date, COALESCE(status, ''),
           COALESCE(business_status, ''), 1, duration_seconds, duration_seconds,
           pg_backend_pid() % 16
    FROM ended
    ON CONFLICT (day, status, business_status, shard) DO UPDATE
    SET stretches = d.stretches + 1,
        total_seconds = d.total_seconds + EXCLUDED.total_seconds,
        max_seconds = GREATEST(d.max_seconds, EXCLUDED.max_seconds);

    INSERT INTO editing_project_daily_counts AS c
    VALUES ((NEW.observed_at AT TIME ZONE 'UTC')::date, NEW.event,
            COALESCE(NEW.previous_status, ''), COALESCE(NEW.status, ''),
            COALESCE(NEW.previous_business_status, ''), COALESCE(NEW.business_status, ''), 1,
            pg_backend_pid() % 16)
    ON CONFLICT (day, event, from_status, to_status, from_business_status, to_business_status,
                 shard)
    DO UPDATE SET transitions = c.transitions + 1;

    -- Lead times: the first row, the first Producing (an outcome before it does not count),
    -- the first outcome after it (a Produced and a ProduceFailed at the same instant: failed,
    -- as 0002 decided).
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

CREATE TRIGGER editing_project_history_facts
AFTER INSERT ON editing_project_history
FOR EACH ROW EXECUTE FUNCTION editing_project_history_facts();

-- The views keep their names, columns and rows, and read the facts.
CREATE OR REPLACE VIEW editing_project_status_intervals AS
SELECT project_id, status, business_status, entered_at, left_at, duration_seconds,
       skipped_on_entry, skipped_on_exit
FROM editing_project_stretches
UNION ALL
SELECT h.project_id, h.status, h.business_status, h.observed_at,
       NULL::timestamptz, NULL::double precision, h.skipped_states, NULL::text
FROM editing_project_rows p
JOIN editing_project_history h ON h.project_id = p.project_id AND h.seq = p.history_seq
WHERE h.event <> 'removed';

CREATE OR REPLACE VIEW editing_project_lead_times AS
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

CREATE OR REPLACE VIEW editing_project_daily_transitions AS
SELECT day,
       event,
       NULLIF(from_status, '') AS from_status,
       NULLIF(to_status, '') AS to_status,
       NULLIF(from_business_status, '') AS from_business_status,
       NULLIF(to_business_status, '') AS to_business_status,
       SUM(transitions)::integer AS transitions
FROM editing_project_daily_counts
GROUP BY day, event, from_status, to_status, from_business_status, to_business_status;

-- Dashboard shapes. Lead-time panels filter on finished_at over a time range; percentiles
-- of a status over a window read that window's stretches only.
CREATE INDEX editing_project_lead_facts_finished_idx
    ON editing_project_lead_facts (finished_at) INCLUDE (outcome, seconds_producing);
CREATE INDEX editing_project_stretches_status_left_idx
    ON editing_project_stretches (status, left_at);

-- Nothing reads history by UTC day any more: editing_project_daily_transitions has its own
-- table. (Its ~20 bytes per history row were the cheapest index to give back.)
DROP INDEX editing_project_history_day_idx;

-- Producing jobs (SPEC.md: media_producing_jobs, editing_project_productions) and the
-- fields of a Project that SPEC.md does not name (editing_projects.extra).
--
-- * extra is text holding one JSON object, not jsonb: it is kept as the API sent it
--   (jsonb would normalise it). Cast it (extra::jsonb) to query inside it.
-- * editing_projects is a view over editing_project_rows since 0009: the column goes on
--   the table, and the view is replaced with it appended (CREATE OR REPLACE VIEW may only
--   add columns at the end), so views reading editing_projects keep working.
-- * media_producing_job_requests is the durable to-do list of job lookups: a project
--   write that enters or leaves Producing queues (project_id, '') in the same
--   transaction, a ProduceMediaComplete callback queues (project_id, JobId) with its
--   dedupe row; the job's write deletes it in the transaction that stores the job.

ALTER TABLE editing_project_rows ADD COLUMN extra text;

CREATE OR REPLACE VIEW editing_projects AS
SELECT p.project_id,
       p.title,
       p.description,
       p.status,
       p.business_status,
       p.project_type,
       p.template_id,
       p.template_type,
       p.clips_param,
       p.timeline,
       p.cover_url,
       p.create_source,
       p.modified_source,
       p.business_config,
       p.timeline_convert_status,
       p.timeline_convert_error_message,
       p.duration,
       p.create_time,
       p.modified_time,
       p.first_seen_at,
       COALESCE(t.last_polled_at, p.last_polled_at) AS last_polled_at,
       p.last_changed_at,
       CASE WHEN t.last_polled_at IS NULL THEN p.last_request_id
            ELSE t.last_request_id END AS last_request_id,
       p.removed_at,
       p.history_seq,
       p.content_hash,
       p.extra
FROM editing_project_rows p
LEFT JOIN tracked_projects t ON t.project_id = p.project_id;

CREATE TABLE media_producing_jobs (
    job_id          text PRIMARY KEY,
    project_id      text NOT NULL,
    status          text,
    code            text,
    message         text,
    media_id        text,
    media_url       text,
    vod_media_id    text,
    template_id     text,
    duration        double precision,
    progress        bigint,
    user_data       text,
    create_time     timestamptz,
    modified_time   timestamptz,
    complete_time   timestamptz,
    first_seen_at   timestamptz NOT NULL,
    last_polled_at  timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    extra           text,
    -- Bookkeeping: the request that produced the stored answer, consecutive "not found"
    -- answers (polling stops at two: the job expired), and the fingerprint of the stored
    -- answer (an unchanged answer moves only last_polled_at).
    last_request_id text,
    not_found_count integer NOT NULL DEFAULT 0,
    content_hash    bigint NOT NULL
);

CREATE INDEX media_producing_jobs_project ON media_producing_jobs (project_id, create_time);
-- The jobs still polled: few at any time, found without reading the finished ones.
CREATE INDEX media_producing_jobs_unfinished ON media_producing_jobs (last_polled_at)
    WHERE status IS NULL OR status NOT IN ('Success', 'Failed');

CREATE TABLE media_producing_job_requests (
    project_id   text NOT NULL,
    -- '' means: list the project's jobs.
    job_id       text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, job_id)
);

CREATE VIEW editing_project_productions AS
SELECT j.job_id,
       j.project_id,
       p.project_type,
       COALESCE(j.template_id, p.template_id) AS template_id,
       j.status,
       CASE WHEN j.status = 'Success' THEN 'success'
            WHEN j.status = 'Failed' THEN 'failed'
            ELSE 'running' END AS outcome,
       j.code,
       j.message,
       j.create_time,
       j.complete_time,
       CASE WHEN j.status IN ('Success', 'Failed') THEN
            EXTRACT(EPOCH FROM (j.complete_time - j.create_time))::double precision
       END AS production_seconds,
       j.duration AS output_duration,
       j.media_url
FROM media_producing_jobs j
LEFT JOIN editing_project_rows p ON p.project_id = j.project_id;

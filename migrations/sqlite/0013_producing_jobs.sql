-- Producing jobs and editing_projects.extra: the same change as the PostgreSQL migration
-- 0013 (see there for why). Forward-only: never edit a released migration, add one.
--
-- SQLite cannot replace a view in place: editing_projects is dropped and created again
-- with extra appended. Views that read it (editing_project_current_status) name their
-- columns and are resolved when queried, so they keep working.

ALTER TABLE editing_project_rows ADD COLUMN extra TEXT;

DROP VIEW editing_projects;
CREATE VIEW editing_projects AS
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
    job_id          TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL,
    status          TEXT,
    code            TEXT,
    message         TEXT,
    media_id        TEXT,
    media_url       TEXT,
    vod_media_id    TEXT,
    template_id     TEXT,
    duration        REAL,
    progress        INTEGER,
    user_data       TEXT,
    create_time     TEXT,
    modified_time   TEXT,
    complete_time   TEXT,
    first_seen_at   TEXT NOT NULL,
    last_polled_at  TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    extra           TEXT,
    last_request_id TEXT,
    not_found_count INTEGER NOT NULL DEFAULT 0,
    content_hash    INTEGER NOT NULL
);

CREATE INDEX media_producing_jobs_project ON media_producing_jobs (project_id, create_time);
CREATE INDEX media_producing_jobs_unfinished ON media_producing_jobs (last_polled_at)
    WHERE status IS NULL OR status NOT IN ('Success', 'Failed');

CREATE TABLE media_producing_job_requests (
    project_id   TEXT NOT NULL,
    job_id       TEXT NOT NULL DEFAULT '',
    requested_at TEXT NOT NULL,
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
            ROUND((julianday(j.complete_time) - julianday(j.create_time)) * 86400, 3)
       END AS production_seconds,
       j.duration AS output_duration,
       j.media_url
FROM media_producing_jobs j
LEFT JOIN editing_project_rows p ON p.project_id = j.project_id;

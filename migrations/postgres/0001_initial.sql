-- ice-sync schema, PostgreSQL. Forward-only: never edit a released migration, add one.
-- Timestamps are timestamptz in UTC, written with millisecond precision.

CREATE TABLE tracked_projects (
    project_id           text PRIMARY KEY,
    added_at             timestamptz NOT NULL,
    source               text NOT NULL,            -- 'config', 'cli', 'import', 'discovered'
    enabled              boolean NOT NULL DEFAULT true,
    next_poll_at         timestamptz,              -- NULL: due now
    last_attempt_at      timestamptz,
    consecutive_failures bigint NOT NULL DEFAULT 0,
    not_found_count      bigint NOT NULL DEFAULT 0, -- consecutive "does not exist" answers
    last_error           text,
    last_error_at        timestamptz
);

CREATE TABLE editing_projects (
    project_id                     text PRIMARY KEY,
    title                          text,
    description                    text,
    status                         text,
    business_status                text,
    project_type                   text,
    template_id                    text,
    template_type                  text,
    clips_param                    text,
    timeline                       text,
    cover_url                      text,
    create_source                  text,
    modified_source                text,
    business_config                text,
    timeline_convert_status        text,
    timeline_convert_error_message text,
    duration                       double precision,
    create_time                    timestamptz,
    modified_time                  timestamptz,
    first_seen_at                  timestamptz NOT NULL,
    last_polled_at                 timestamptz NOT NULL, -- when the request behind this row was sent
    last_changed_at                timestamptz NOT NULL,
    last_request_id                text,
    removed_at                     timestamptz,
    history_seq                    bigint NOT NULL DEFAULT 0 -- seq of this project's latest history row
);
CREATE INDEX editing_projects_status_idx ON editing_projects (project_type, status, business_status);

CREATE TABLE sync_runs (
    id               bigserial PRIMARY KEY,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    outcome          text NOT NULL DEFAULT 'running', -- running, success, partial, failed, aborted
    projects_polled  bigint NOT NULL DEFAULT 0,
    projects_changed bigint NOT NULL DEFAULT 0,
    transitions      bigint NOT NULL DEFAULT 0,
    failures         bigint NOT NULL DEFAULT 0,
    replica_id       text,
    error            text
);
CREATE INDEX sync_runs_started_idx ON sync_runs (started_at);

CREATE TABLE editing_project_history (
    id                       bigserial PRIMARY KEY,
    project_id               text NOT NULL,
    seq                      bigint NOT NULL,  -- 1, 2, 3 ... per project
    observed_at              timestamptz NOT NULL,
    event                    text NOT NULL,    -- first_seen, changed, removed, returned
    previous_status          text,
    status                   text,
    previous_business_status text,
    business_status          text,
    modified_time            timestamptz,
    request_id               text,
    sync_run_id              bigint REFERENCES sync_runs (id),
    -- Two writers that both saw seq n can never both append n+1: no duplicate rows.
    CONSTRAINT editing_project_history_seq_key UNIQUE (project_id, seq)
);
CREATE INDEX editing_project_history_observed_idx ON editing_project_history (observed_at);

-- One row per stretch of time a project spent in a (status, business_status) pair.
-- left_at and duration_seconds are NULL while the stretch is current. A removal closes
-- the stretch before it and opens none.
CREATE VIEW editing_project_status_intervals AS
SELECT project_id,
       status,
       business_status,
       entered_at,
       left_at,
       EXTRACT(EPOCH FROM (left_at - entered_at))::double precision AS duration_seconds
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

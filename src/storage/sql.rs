//! Every SQL statement ice-sync runs, each in one place.
//!
//! The text is shared by both backends: `$N` placeholders work in PostgreSQL and in
//! sqlx's SQLite driver, timestamps bind through `storage::timestamp`, and only
//! portable syntax is used (`ON CONFLICT`, `RETURNING`, `TRUE`/`FALSE`). What cannot be
//! shared (DDL, views) lives in the per-backend migrations.

/// The state the diff needs, for tracked projects. Append a `WHERE`.
macro_rules! stored_select {
    () => {
        "SELECT t.project_id, t.not_found_count, t.consecutive_failures, \
                p.status, p.business_status, p.modified_time, p.last_polled_at, \
                p.removed_at, p.history_seq, p.content_hash \
         FROM tracked_projects t LEFT JOIN editing_projects p ON p.project_id = t.project_id "
    };
}

pub const DUE_PROJECTS: &str = concat!(
    stored_select!(),
    "WHERE t.enabled AND (t.next_poll_at IS NULL OR t.next_poll_at <= $1) ORDER BY t.project_id"
);

pub const ONE_PROJECT: &str = concat!(stored_select!(), "WHERE t.project_id = $1");

/// SQLite claims by reading: one daemon per file (a lock file enforces it), so a keyset
/// page of due projects needs no lease. `$1` cycle start, `$2` last ID of the previous
/// page, `$3` page size.
pub const CLAIM_PAGE: &str = concat!(
    stored_select!(),
    "WHERE t.enabled AND (t.next_poll_at IS NULL OR t.next_poll_at <= $1) AND t.project_id > $2 \
     ORDER BY t.project_id LIMIT $3"
);

/// PostgreSQL claims with a lease, skipping rows other replicas are claiming right now,
/// the way Postgres job queues do. `$1` cycle start, `$2` now, `$3` batch size, `$4` this
/// replica, `$5` lease expiry, `$6` cycle start + lease TTL: a lease of ours expiring
/// before that was taken by an earlier cycle that failed to finish, and is ours to retake.
pub const CLAIM_LEASED: &str = "\
WITH due AS (
    SELECT project_id FROM tracked_projects
    WHERE enabled AND (next_poll_at IS NULL OR next_poll_at <= $1)
      AND (lease_expires_at IS NULL OR lease_expires_at < $2
           OR (lease_owner = $4 AND lease_expires_at < $6))
    ORDER BY next_poll_at NULLS FIRST, project_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tracked_projects t SET lease_owner = $4, lease_expires_at = $5
    FROM due WHERE t.project_id = due.project_id
    RETURNING t.project_id, t.not_found_count, t.consecutive_failures
)
SELECT c.project_id, c.not_found_count, c.consecutive_failures, p.status, p.business_status,
       p.modified_time, p.last_polled_at, p.removed_at, p.history_seq, p.content_hash
FROM claimed c LEFT JOIN editing_projects p ON p.project_id = c.project_id
ORDER BY c.project_id";

/// Replicas that hold leases, for releasing those of dead local processes at start-up.
pub const LEASE_OWNERS: &str = "\
SELECT DISTINCT lease_owner FROM tracked_projects WHERE lease_owner LIKE $1";

/// Gives back what this replica claimed but did not poll (shutdown, deadline).
pub const RELEASE_LEASES: &str = "\
UPDATE tracked_projects SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1";

/// Unchanged projects, many per statement. `$1` is a JSON array of
/// `{project_id, polled_at, request_id, expected_seq, next_poll_at}`. PostgreSQL updates
/// both tables in one statement and returns the IDs it applied.
pub const TOUCH_POSTGRES: &str = "\
WITH v AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(
        project_id text, polled_at timestamptz, request_id text, expected_seq bigint,
        next_poll_at timestamptz)
), touched AS (
    UPDATE editing_projects p SET last_polled_at = v.polled_at, last_request_id = v.request_id
    FROM v
    WHERE p.project_id = v.project_id AND p.history_seq = v.expected_seq
      AND p.last_polled_at < v.polled_at
    RETURNING p.project_id
)
UPDATE tracked_projects t SET last_attempt_at = v.polled_at, next_poll_at = v.next_poll_at,
    consecutive_failures = 0, not_found_count = 0, last_error = NULL, last_error_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
FROM v JOIN touched ON touched.project_id = v.project_id
WHERE t.project_id = v.project_id
RETURNING t.project_id";

/// SQLite's half of a touch: the project rows. Returns the IDs applied; the tracking
/// rows of exactly those follow in `TOUCH_TRACKING_SQLITE`, in the same transaction.
pub const TOUCH_PROJECTS_SQLITE: &str = "\
UPDATE editing_projects AS p SET last_polled_at = v.polled_at, last_request_id = v.request_id
FROM (SELECT value ->> 'project_id' AS project_id, value ->> 'polled_at' AS polled_at,
             value ->> 'request_id' AS request_id, value ->> 'expected_seq' AS expected_seq
      FROM json_each($1)) AS v
WHERE p.project_id = v.project_id AND p.history_seq = v.expected_seq
  AND p.last_polled_at < v.polled_at
RETURNING project_id";

pub const TOUCH_TRACKING_SQLITE: &str = "\
UPDATE tracked_projects AS t SET last_attempt_at = v.polled_at, next_poll_at = v.next_poll_at,
    consecutive_failures = 0, not_found_count = 0, last_error = NULL, last_error_at = NULL,
    lease_owner = NULL, lease_expires_at = NULL
FROM (SELECT value ->> 'project_id' AS project_id, value ->> 'polled_at' AS polled_at,
             value ->> 'next_poll_at' AS next_poll_at
      FROM json_each($1)) AS v
WHERE t.project_id = v.project_id";

/// `$1..$19` are the mirrored columns, bound by `bind_project_columns`.
pub const INSERT_PROJECT: &str = "\
INSERT INTO editing_projects (
    project_id, title, description, status, business_status, project_type, template_id,
    template_type, clips_param, timeline, cover_url, create_source, modified_source,
    business_config, timeline_convert_status, timeline_convert_error_message, duration,
    create_time, modified_time,
    first_seen_at, last_polled_at, last_changed_at, last_request_id, removed_at, history_seq,
    content_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $20, $20, $21, NULL, $22, $23)
ON CONFLICT (project_id) DO NOTHING";

/// Compare-and-set: applies only if nobody wrote a newer answer (`history_seq` moved or
/// a later-started request was stored) since the plan was made.
pub const UPDATE_PROJECT: &str = "\
UPDATE editing_projects SET
    title = $2, description = $3, status = $4, business_status = $5, project_type = $6,
    template_id = $7, template_type = $8, clips_param = $9, timeline = $10, cover_url = $11,
    create_source = $12, modified_source = $13, business_config = $14,
    timeline_convert_status = $15, timeline_convert_error_message = $16, duration = $17,
    create_time = $18, modified_time = $19,
    last_polled_at = $20,
    last_changed_at = CASE WHEN $21 THEN $20 ELSE last_changed_at END,
    last_request_id = $22,
    removed_at = NULL,
    history_seq = $23,
    content_hash = $25
WHERE project_id = $1 AND history_seq = $24 AND last_polled_at < $20";

/// Stored state of many projects at once (list mode reads a page's worth).
pub const LOAD_MANY_POSTGRES: &str = concat!(
    stored_select!(),
    "WHERE t.project_id IN (SELECT jsonb_array_elements_text($1::jsonb))"
);
pub const LOAD_MANY_SQLITE: &str = concat!(
    stored_select!(),
    "WHERE t.project_id IN (SELECT value FROM json_each($1))"
);

/// A status change read from a list item: the fields a list item has, nothing else.
/// `content_hash` is cleared so the full fetch that follows rewrites the whole row.
pub const INSERT_LISTED: &str = "\
INSERT INTO editing_projects (
    project_id, title, description, status, business_status, project_type, template_type,
    cover_url, create_source, modified_source, business_config, create_time, modified_time,
    first_seen_at, last_polled_at, last_changed_at, last_request_id, removed_at, history_seq,
    content_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14, $15, NULL, $16, NULL)
ON CONFLICT (project_id) DO NOTHING";

pub const UPDATE_LISTED: &str = "\
UPDATE editing_projects SET
    title = $2, description = $3, status = $4, business_status = $5, project_type = $6,
    template_type = $7, cover_url = $8, create_source = $9, modified_source = $10,
    business_config = $11, create_time = $12, modified_time = $13,
    last_polled_at = $14, last_changed_at = $14, last_request_id = $15, removed_at = NULL,
    history_seq = $16, content_hash = NULL
WHERE project_id = $1 AND history_seq = $17 AND last_polled_at < $14";

/// A single unchanged project (the batched form is `TOUCH_*`).
pub const TOUCH_ONE: &str = "\
UPDATE editing_projects SET last_polled_at = $2, last_request_id = $3
WHERE project_id = $1 AND history_seq = $4 AND last_polled_at < $2";

pub const MARK_REMOVED: &str = "\
UPDATE editing_projects SET removed_at = $2, last_polled_at = $2, last_changed_at = $2,
    last_request_id = $3, history_seq = $4
WHERE project_id = $1 AND history_seq = $5 AND last_polled_at < $2";

pub const INSERT_HISTORY: &str = "\
INSERT INTO editing_project_history (
    project_id, seq, observed_at, event, previous_status, status,
    previous_business_status, business_status, modified_time, request_id, sync_run_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

pub const TRACK_SUCCESS: &str = "\
UPDATE tracked_projects SET last_attempt_at = $2, consecutive_failures = 0,
    not_found_count = 0, last_error = NULL, last_error_at = NULL, next_poll_at = $3,
    lease_owner = NULL, lease_expires_at = NULL
WHERE project_id = $1";

pub const TRACK_NOT_FOUND: &str = "\
UPDATE tracked_projects SET last_attempt_at = $2, not_found_count = $3, last_error = $4,
    last_error_at = $2, next_poll_at = $5, lease_owner = NULL, lease_expires_at = NULL
WHERE project_id = $1";

pub const TRACK_FAILURE: &str = "\
UPDATE tracked_projects SET last_attempt_at = $2,
    consecutive_failures = consecutive_failures + 1, last_error = $3, last_error_at = $2,
    next_poll_at = $4, lease_owner = NULL, lease_expires_at = NULL
WHERE project_id = $1";

/// Adds a project, or re-enables a disabled one. Affects 0 rows if already tracked.
pub const TRACK_ADD: &str = "\
INSERT INTO tracked_projects (project_id, added_at, source, enabled) VALUES ($1, $2, $3, TRUE)
ON CONFLICT (project_id) DO UPDATE SET enabled = TRUE WHERE tracked_projects.enabled = FALSE";

pub const TRACK_REMOVE: &str = "DELETE FROM tracked_projects WHERE project_id = $1";

pub const TRACK_DISABLE: &str = "UPDATE tracked_projects SET enabled = FALSE WHERE project_id = $1";

pub const TRACK_LIST: &str = "\
SELECT project_id, added_at, source, enabled FROM tracked_projects ORDER BY project_id";

pub const BEGIN_RUN: &str = "\
INSERT INTO sync_runs (started_at, outcome, replica_id) VALUES ($1, 'running', $2) RETURNING id";

pub const FINISH_RUN: &str = "\
UPDATE sync_runs SET finished_at = $2, outcome = $3, projects_polled = $4,
    projects_changed = $5, transitions = $6, failures = $7, error = $8
WHERE id = $1";

/// Runs left `running` by a process of this host that died: they will never finish.
/// (`$1` is a `LIKE` pattern for this host's replica ids; a live sibling replica's run,
/// if any, is simply re-closed with its real outcome when it finishes.)
pub const ABANDON_RUNS: &str = "\
UPDATE sync_runs SET outcome = 'aborted', error = 'the process stopped before the cycle finished'
WHERE outcome = 'running' AND replica_id LIKE $1";

pub const STATUS: &str = "\
SELECT t.project_id, t.enabled, p.status, p.business_status, p.last_polled_at,
       p.last_changed_at, p.removed_at, t.last_error, t.consecutive_failures
FROM tracked_projects t LEFT JOIN editing_projects p ON p.project_id = t.project_id
ORDER BY t.project_id";

pub const HISTORY: &str = "\
SELECT seq, observed_at, event, previous_status, status, previous_business_status,
       business_status, request_id
FROM editing_project_history WHERE project_id = $1 ORDER BY seq";

pub const PING: &str = "SELECT 1";

//! The SQL both backends share, each statement in one place.
//!
//! `$N` placeholders work in PostgreSQL and in sqlx's SQLite driver, timestamps bind
//! through `storage::timestamp`, and only portable syntax is used (`ON CONFLICT`,
//! `RETURNING`, `TRUE`/`FALSE`). What cannot be shared is the backend's [`Dialect`]
//! (`storage::postgres`, `storage::sqlite`); DDL and views live in the migrations.
//!
//! Every write of a claimed project is fenced: the tracking update comes first and
//! carries `claim_token = $mine`; if it matches nothing the claim was taken over (or
//! already used) and nothing else is written. The update also moves the token on, so a
//! claim is good for exactly one write.
//!
//! The wide row (`editing_project_rows`: Timeline, ClipsParam, BusinessConfig) is written
//! only when something changed; the poll itself (`last_polled_at`, `last_request_id`) is
//! recorded by the fence on the narrow `tracked_projects` row, and the `editing_projects`
//! view shows the newer of the two (migration 0009). Reads that need the latest poll take
//! `COALESCE(t.last_polled_at, p.last_polled_at)` the same way.
//!
//! [`Dialect`]: super::backend::Dialect

/// The columns a [`Stored`](crate::contract::Stored) is read from. Append `FROM` and `WHERE`.
macro_rules! stored_columns {
    () => {
        "SELECT t.project_id, t.not_found_count, t.consecutive_failures, t.claim_token, \
                p.status, p.business_status, p.modified_time, \
                COALESCE(t.last_polled_at, p.last_polled_at) AS last_polled_at, \
                p.removed_at, p.history_seq, p.content_hash \
         FROM tracked_projects t LEFT JOIN editing_project_rows p ON p.project_id = t.project_id "
    };
}
pub(crate) use stored_columns;

/// The columns a [`RefreshState`](super::refresh_queue::RefreshState) is read from. Append
/// `WHERE`.
macro_rules! request_state_columns {
    () => {
        "SELECT t.project_id, t.requested_at IS NOT NULL AS requested, t.lease_expires_at,
                t.last_attempt_at, t.last_error, t.last_error_at, p.status, p.business_status,
                COALESCE(t.last_polled_at, p.last_polled_at) AS last_polled_at
         FROM tracked_projects t LEFT JOIN editing_project_rows p ON p.project_id = t.project_id "
    };
}
pub(crate) use request_state_columns;

pub(crate) const ONE_PROJECT: &str = concat!(stored_columns!(), "WHERE t.project_id = $1");

/// The parameters of `INSERT_PROJECT` and `UPDATE_PROJECT` are one row type's
/// (`writes::ProjectRow`), in one order: `$1` project, `$2..$19` the mirrored columns,
/// `$20` polled at, `$21` changed, `$22` request id, `$23` the new `history_seq`, `$24` the
/// expected one, `$25` content hash, `$26` extra. The insert has no use for `$21` and `$24`.
pub(crate) const INSERT_PROJECT: &str = "\
INSERT INTO editing_project_rows (
    project_id, title, description, status, business_status, project_type, template_id,
    template_type, clips_param, timeline, cover_url, create_source, modified_source,
    business_config, timeline_convert_status, timeline_convert_error_message, duration,
    create_time, modified_time,
    first_seen_at, last_polled_at, last_changed_at, last_request_id, removed_at, history_seq,
    content_hash, extra)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $20, $20, $22, NULL, $23, $25, $26)
ON CONFLICT (project_id) DO NOTHING";

/// Compare-and-set on `history_seq` (`$24`): a second guard behind the claim token.
pub(crate) const UPDATE_PROJECT: &str = "\
UPDATE editing_project_rows SET
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
    content_hash = $25,
    extra = $26
WHERE project_id = $1 AND history_seq = $24";

/// A project entered or left `Producing`: list its producing jobs (`sync::jobs`), queued
/// in the transaction that writes the transition. `$1` project, `$2` now.
pub(crate) const JOB_REQUEST_PROJECT: &str = "\
INSERT INTO media_producing_job_requests (project_id, job_id, requested_at)
VALUES ($1, '', $2)
ON CONFLICT (project_id, job_id) DO NOTHING";

pub(crate) const MARK_REMOVED: &str = "\
UPDATE editing_project_rows SET removed_at = $2, last_polled_at = $2, last_changed_at = $2,
    last_request_id = $3, history_seq = $4
WHERE project_id = $1 AND history_seq = $5";

/// One history row, `$1..$12` (`writes::bind_history`); PostgreSQL wraps it to announce
/// the row in the same statement (`Dialect::INSERT_HISTORY_ANNOUNCED`).
macro_rules! insert_history {
    () => {
        "INSERT INTO editing_project_history (
    project_id, seq, observed_at, event, previous_status, status,
    previous_business_status, business_status, modified_time, request_id, sync_run_id,
    skipped_states)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    };
}
pub(crate) use insert_history;

pub(crate) const INSERT_HISTORY: &str = insert_history!();

/// A committed history row waiting for the webhook (`$3` the payload), in the history
/// row's transaction. (PostgreSQL does this inside `INSERT_HISTORY_ANNOUNCED`.)
pub(crate) const OUTBOX_ENQUEUE: &str = "\
INSERT INTO webhook_outbox (project_id, seq, payload, observed_at) VALUES ($1, $2, $3, $4)";

/// The receiver acknowledged it: gone, whoever holds the lease now.
pub(crate) const OUTBOX_DELIVERED: &str =
    "DELETE FROM webhook_outbox WHERE project_id = $1 AND seq = $2";

/// Gives back the rows a replica leased and did not finish (shutdown, a dead process).
pub(crate) const OUTBOX_RELEASE: &str = "\
UPDATE webhook_outbox SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1";

pub(crate) const OUTBOX_LEASE_OWNERS: &str = "\
SELECT DISTINCT lease_owner FROM webhook_outbox WHERE lease_owner LIKE $1";

/// What is waiting, and the observation time of the oldest: the outbox holds only what
/// is not yet acknowledged, so this stays small unless the receiver is down.
pub(crate) const OUTBOX_STATS: &str = "SELECT count(*), min(observed_at) FROM webhook_outbox";

/// The fence of an answered poll, and its record (`$6` when the request was sent, `$7` its
/// request id): for an unchanged project the only statement (the batched form is the
/// dialect's `TOUCH`). `$5` is the claim token.
pub(crate) const TRACK_SUCCESS: &str = "\
UPDATE tracked_projects SET last_attempt_at = $2, consecutive_failures = 0,
    not_found_count = 0, last_error = NULL, last_error_at = NULL, next_poll_at = $3,
    every_tick = $4, lease_owner = NULL, lease_expires_at = NULL, claim_token = claim_token + 1,
    last_polled_at = $6, last_request_id = $7
WHERE project_id = $1 AND claim_token = $5";

/// The poll that marked a project removed, after its fence (`TRACK_NOT_FOUND`).
pub(crate) const TRACK_POLLED: &str = "\
UPDATE tracked_projects SET last_polled_at = $2, last_request_id = $3 WHERE project_id = $1";

/// `$3` the consecutive not-found count, `$7` the claim token.
pub(crate) const TRACK_NOT_FOUND: &str = "\
UPDATE tracked_projects SET last_attempt_at = $2, not_found_count = $3, last_error = $4,
    last_error_at = $2, next_poll_at = $5, every_tick = $6, lease_owner = NULL,
    lease_expires_at = NULL, claim_token = claim_token + 1
WHERE project_id = $1 AND claim_token = $7";

/// `$6` the claim token.
pub(crate) const TRACK_FAILURE: &str = "\
UPDATE tracked_projects SET last_attempt_at = $2,
    consecutive_failures = consecutive_failures + 1, last_error = $3, last_error_at = $2,
    next_poll_at = $4, every_tick = $5, lease_owner = NULL, lease_expires_at = NULL,
    claim_token = claim_token + 1
WHERE project_id = $1 AND claim_token = $6";

/// Replicas that hold leases, for releasing those of dead local processes at start-up.
pub(crate) const LEASE_OWNERS: &str = "\
SELECT DISTINCT lease_owner FROM tracked_projects WHERE lease_owner LIKE $1";

/// Gives back what a replica claimed but did not poll (shutdown, deadline).
pub(crate) const RELEASE_LEASES: &str = "\
UPDATE tracked_projects SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1";

/// Adds a project, due at once (`$4` is the epoch: a never-polled project is the most
/// overdue of all), or re-enables a disabled one. Adding by hand (`cli`) or
/// from a file (`import`) also takes over a project that came from `sync.projects`, so a
/// later config change does not disable it behind the user's back.
pub(crate) const TRACK_ADD: &str = "\
INSERT INTO tracked_projects (project_id, added_at, source, enabled, next_poll_at)
VALUES ($1, $2, $3, TRUE, $4)
ON CONFLICT (project_id) DO UPDATE SET enabled = TRUE, source = excluded.source
WHERE NOT tracked_projects.enabled
   OR (tracked_projects.source <> excluded.source AND excluded.source IN ('cli', 'import'))";

pub(crate) const TRACK_LIST: &str = "\
SELECT project_id, added_at, source, enabled FROM tracked_projects ORDER BY project_id";

/// Enabled tracked projects, counted in the database (a metrics gauge, `check`): one row
/// back whatever their number.
pub const COUNT_TRACKED: &str = "SELECT count(*) FROM tracked_projects WHERE enabled";

/// One enabled project (the lowest ID), for `check`'s API call.
pub(crate) const FIRST_TRACKED: &str =
    "SELECT project_id FROM tracked_projects WHERE enabled ORDER BY project_id LIMIT 1";

/// `$3` is what started the cycle (`sync_runs.trigger`).
pub(crate) const BEGIN_RUN: &str = "\
INSERT INTO sync_runs (started_at, outcome, replica_id, trigger) VALUES ($1, 'running', $2, $3)
RETURNING id";

/// Requests a poll of every enabled project (`$1` the request time). An earlier pending
/// request keeps its time, so the queue stays in order.
pub(crate) const REQUEST_ALL: &str = "\
UPDATE tracked_projects SET requested_at = COALESCE(requested_at, $1) WHERE enabled
RETURNING project_id";

/// Requests a poll of the enabled projects whose current status or business status is `$2`
/// (removed projects have no current status).
pub(crate) const REQUEST_STATUS: &str = "\
UPDATE tracked_projects SET requested_at = COALESCE(requested_at, $1)
WHERE enabled AND project_id IN (
    SELECT project_id FROM editing_project_rows
    WHERE removed_at IS NULL AND (status = $2 OR business_status = $2))
RETURNING project_id";

pub(crate) const FINISH_RUN: &str = "\
UPDATE sync_runs SET finished_at = $2, outcome = $3, projects_polled = $4,
    projects_changed = $5, transitions = $6, failures = $7, error = $8, overran = $9
WHERE id = $1";

/// A run that claimed nothing (a refresh cycle another replica beat to the claim).
pub(crate) const DISCARD_RUN: &str = "DELETE FROM sync_runs WHERE id = $1 AND outcome = 'running'";

/// Runs left `running` by one replica id (compared exactly, never a pattern: a named id
/// may hold `_` or `%`) whose process is known to be gone: they will never finish.
pub(crate) const ABANDON_RUNS: &str = "\
UPDATE sync_runs SET outcome = 'aborted', error = 'the process stopped before the cycle finished'
WHERE outcome = 'running' AND replica_id = $1";

/// The replica ids with a run still `running`, for start-up to pick its own from.
pub(crate) const RUNNING_REPLICAS: &str = "\
SELECT DISTINCT replica_id FROM sync_runs WHERE outcome = 'running' AND replica_id IS NOT NULL";

pub(crate) const STATUS: &str = "\
SELECT t.project_id, t.enabled, p.status, p.business_status,
       COALESCE(t.last_polled_at, p.last_polled_at) AS last_polled_at,
       p.last_changed_at, p.removed_at, t.last_error, t.consecutive_failures
FROM tracked_projects t LEFT JOIN editing_project_rows p ON p.project_id = t.project_id
ORDER BY t.project_id";

pub const HISTORY: &str = "\
SELECT seq, observed_at, event, previous_status, status, previous_business_status,
       business_status, request_id, skipped_states
FROM editing_project_history WHERE project_id = $1 ORDER BY seq";

/// The oldest observation among enabled projects due at every tick, and among the
/// others: each an `ORDER BY ... LIMIT 1` probe of `tracked_projects_observed_idx`
/// (migration 0005), so a scrape costs the same at ten projects or a million.
pub const OLDEST_OBSERVATIONS: &str = "\
SELECT (SELECT COALESCE(last_attempt_at, added_at) FROM tracked_projects
        WHERE enabled AND every_tick = TRUE
        ORDER BY COALESCE(last_attempt_at, added_at) LIMIT 1) AS every_tick,
       (SELECT COALESCE(last_attempt_at, added_at) FROM tracked_projects
        WHERE enabled AND every_tick = FALSE
        ORDER BY COALESCE(last_attempt_at, added_at) LIMIT 1) AS other";

/// Enabled projects not polled since `$1` (never-polled ones count from `added_at`),
/// oldest first. A command, not a scrape: reading every tracked row is fine here.
pub(crate) const STALE: &str = "\
SELECT t.project_id, t.added_at, t.last_attempt_at, t.next_poll_at, t.every_tick,
       t.last_error, t.consecutive_failures, p.status, p.business_status,
       COALESCE(t.last_polled_at, p.last_polled_at) AS last_polled_at
FROM tracked_projects t LEFT JOIN editing_project_rows p ON p.project_id = t.project_id
WHERE t.enabled AND COALESCE(t.last_attempt_at, t.added_at) < $1
ORDER BY COALESCE(t.last_attempt_at, t.added_at), t.project_id";

/// The columns a [`SweepCursor`](crate::contract::SweepCursor) is read from, for `RETURNING`.
macro_rules! sweep_columns {
    () => {
        "id, started_at, pages, next_token, params, filter"
    };
}
pub(crate) use sweep_columns;

/// Ends the sweep `$1` held by `$2`: `$3` outcome, `$4` now, and the last page's counts
/// (`$5` pages, `$6` marked, `$7` discovered). Fenced on the owner like every advance.
pub(crate) const SWEEP_FINISH: &str = "\
UPDATE list_sweeps SET outcome = $3, finished_at = $4, updated_at = $4, pages = pages + $5,
    marked = marked + $6, discovered = discovered + $7, next_token = NULL, replica_id = $2,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = $1 AND outcome = 'running' AND lease_owner = $2";

/// Gives the sweep in progress back, so any replica may continue it at once.
pub(crate) const SWEEP_RELEASE: &str = "\
UPDATE list_sweeps SET lease_owner = NULL, lease_expires_at = NULL
WHERE outcome = 'running' AND lease_owner = $1";

/// The sweep in progress (the partial unique index holds at most one).
pub(crate) const SWEEP_RUNNING: &str =
    "SELECT started_at, pages FROM list_sweeps WHERE outcome = 'running'";

/// The latest completed sweep (ids only grow).
pub(crate) const SWEEP_LAST_COMPLETED: &str = "\
SELECT started_at, finished_at, pages FROM list_sweeps
WHERE outcome = 'completed' ORDER BY id DESC LIMIT 1";

pub(crate) const PING: &str = "SELECT 1";

/// Whether a callback's project is tracked, and enabled.
pub(crate) const CALLBACK_TRACKED: &str =
    "SELECT enabled FROM tracked_projects WHERE project_id = $1";

/// The dedupe of callbacks: the first insert of an (EventType, JobId) wins, on every
/// replica at once (a concurrent second insert waits for the first and then does nothing).
pub(crate) const CALLBACK_RECORD: &str = "\
INSERT INTO callback_events (event_type, job_id, project_id, status, event_time, received_at,
    received_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (event_type, job_id) DO NOTHING";

/// `callback.track_unknown`: a project named by a callback becomes tracked, due at once
/// (`$3` is the epoch). A row that exists (disabled, say) is left as it is.
pub(crate) const CALLBACK_TRACK: &str = "\
INSERT INTO tracked_projects (project_id, added_at, source, enabled, next_poll_at)
VALUES ($1, $2, 'callback', TRUE, $3)
ON CONFLICT (project_id) DO NOTHING";

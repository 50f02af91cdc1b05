//! `# HELP` for every metric the daemon exports, in one declarative list, and the zeros
//! that make a rarely touched counter visible before its first event (a dashboard sees
//! `0`, not a missing series). Names come from `metric_names`; `ops::metrics` calls
//! [`describe`] once, when it installs the recorder.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

use crate::metric_names::*;

/// `# HELP` text for every metric, and zeros for the counters that may stay untouched
/// for a long time, so a dashboard sees `0` rather than no series at all.
pub(crate) fn describe() {
    super::metrics::process_collector().describe();
    describe_counter!(
        CYCLES,
        "Sync cycles finished, by outcome (success, partial, failed)."
    );
    describe_histogram!(
        CYCLE_DURATION,
        Unit::Seconds,
        "Wall-clock duration of sync cycles."
    );
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time at which the last cycle with outcome success finished."
    );
    describe_gauge!(
        LAST_CYCLE,
        Unit::Seconds,
        "Unix time at which the last cycle finished, whatever its outcome."
    );
    describe_gauge!(
        TRACKED,
        "Enabled tracked projects, counted after each cycle."
    );
    describe_counter!(PROJECTS_POLLED, "Projects polled by sync cycles.");
    describe_counter!(
        PROJECT_FAILURES,
        "Projects whose poll failed (API error after retries, or the database write failed)."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label names the running build."
    );
    describe_counter!(
        API_REQUESTS,
        "ICE API requests sent (each retry counts), by action, outcome (ok, retryable, not_found, auth, error) and ICE error code."
    );
    describe_histogram!(
        API_DURATION,
        Unit::Seconds,
        "ICE API request latency, by action."
    );
    describe_counter!(
        API_RETRIES,
        "ICE API requests retried after a transient failure."
    );
    describe_counter!(
        RATE_LIMITER_WAITS,
        "Requests that waited for the client-side rate limiter (sync.max_qps)."
    );
    describe_counter!(
        TRANSITIONS,
        "History rows written, by the status entered (removed for removals)."
    );
    describe_counter!(
        GAP_TRANSITIONS,
        "History rows whose change skipped states of the known lifecycle (polled too rarely to see them), by the states skipped."
    );
    describe_gauge!(
        OLDEST_OBSERVATION_AGE,
        Unit::Seconds,
        "Age of the oldest poll among enabled projects: projects=unsettled (due at every tick) or all; never-polled projects count from when they were tracked."
    );
    describe_counter!(
        TICKS_SKIPPED,
        "Schedule ticks lost because the previous cycle ran past a whole tick."
    );
    describe_counter!(
        CLOCK_STEPS,
        "Steps of the system clock noticed between cycles (NTP corrections, VM restores)."
    );
    describe_gauge!(
        CLOCK_SKEW,
        Unit::Seconds,
        "This machine's clock minus the database server's (PostgreSQL), at the last cycle."
    );
    describe_counter!(
        CYCLE_OVERRUNS,
        "Cycles that stopped claiming before the next tick with projects still due."
    );
    describe_counter!(
        WRITES_FENCED,
        "Answers dropped because another replica had taken the project over (claim token)."
    );
    describe_counter!(
        STORAGE_ERRORS,
        "Storage errors during cycles, by kind (unavailable, contention, refused)."
    );
    describe_counter!(
        REMOVALS_SUPPRESSED,
        "Not-found answers not counted toward removal because most of their cycle said the same."
    );
    describe_counter!(
        POLL_REQUESTS,
        "Projects asked to be polled now, by source (cli: ice-sync refresh, http: POST /refresh, callback: ICE events)."
    );
    describe_histogram!(
        POLL_REQUEST_WAIT,
        Unit::Seconds,
        "How long the oldest poll request had waited when a refresh cycle started to claim."
    );
    describe_counter!(
        CALLBACKS,
        "ICE event callbacks received, by outcome: accepted and tracked queued a poll, duplicate was a repeat (answered 200, nothing queued), the others were refused."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook POSTs of transitions, by outcome (delivered: 2xx; failed: anything else or a timeout, retried)."
    );
    describe_gauge!(
        WEBHOOK_PENDING,
        "Transitions in webhook_outbox not yet acknowledged by webhook.url."
    );
    describe_gauge!(
        WEBHOOK_OLDEST_PENDING,
        Unit::Seconds,
        "Age of the oldest transition not yet acknowledged by webhook.url (0 when none)."
    );
    describe_counter!(
        WEBHOOK_DROPPED,
        "Transitions dropped from webhook_outbox undelivered after webhook.max_pending_age (their history rows stay)."
    );
    describe_counter!(
        PRUNED_ROWS,
        "Bookkeeping rows deleted by the retention prune, by table (sync_runs, list_sweeps, callback_events, webhook_outbox)."
    );
    describe_counter!(
        RELOADS,
        "Configuration reloads (SIGHUP), by outcome (applied, refused: the running configuration stays)."
    );
    describe_counter!(
        HTTP_REFUSED,
        "Connections and requests an HTTP listener turned away, by listener (metrics, callback) and reason."
    );
    describe_gauge!(
        HTTP_CONNECTIONS,
        "Connections an HTTP listener holds open now, by listener."
    );
    describe_histogram!(
        RESPONSE_BUDGET_WAIT,
        Unit::Seconds,
        "How long a fetch waited for its share of the in-flight ICE response budget."
    );
    describe_gauge!(
        RESPONSE_BUDGET_HELD,
        Unit::Bytes,
        "Bytes of the 32 MiB in-flight budget held now: ICE answers being read or parsed, and projects waiting for or in the writer's batch until their write commits."
    );
    describe_counter!(
        CREDENTIAL_REFRESHES,
        "Fetches of temporary credentials (STS, ECS metadata), by source kind and outcome."
    );

    describe_counter!(
        LIST_PAGES,
        "List mode: ListEditingProjects pages fetched and processed by this replica's sweeps."
    );
    describe_gauge!(
        LIST_CYCLE_PAGES,
        "List mode: pages this replica's last cycle swept (0 when another replica held the sweep)."
    );
    describe_counter!(
        LIST_SWEEPS,
        "List mode: sweeps this replica ended, by outcome (completed, restarted: ICE refused the token, abandoned: the filter changed)."
    );
    describe_gauge!(
        LIST_SWEEP_DURATION,
        Unit::Seconds,
        "List mode: how long the last sweep this replica completed took, from page one to the last page."
    );
    describe_gauge!(
        LIST_SWEEP_AGE,
        Unit::Seconds,
        "List mode: age of the sweep in progress (since its page one) at the end of the last cycle; 0 when none."
    );

    for outcome in ["success", "partial", "failed"] {
        metrics::counter!(CYCLES, "outcome" => outcome).increment(0);
    }
    for name in [
        PROJECTS_POLLED,
        PROJECT_FAILURES,
        API_RETRIES,
        RATE_LIMITER_WAITS,
        TICKS_SKIPPED,
        CLOCK_STEPS,
        CYCLE_OVERRUNS,
        WRITES_FENCED,
        REMOVALS_SUPPRESSED,
        WEBHOOK_DROPPED,
    ] {
        metrics::counter!(name).increment(0);
    }
    for table in crate::storage::PruneTarget::ALL {
        metrics::counter!(PRUNED_ROWS, "table" => table.table()).increment(0);
    }
    for source in ["cli", "http", "callback"] {
        metrics::counter!(POLL_REQUESTS, "source" => source).increment(0);
    }
    for outcome in ["delivered", "failed"] {
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    for kind in ["unavailable", "contention", "refused"] {
        metrics::counter!(STORAGE_ERRORS, "kind" => kind).increment(0);
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // The gaps the lifecycle knows best, so `rate()` has a series before the first one.
    for skipped in ["Producing", "BroadCasting"] {
        metrics::counter!(GAP_TRANSITIONS, "skipped" => skipped).increment(0);
    }
}

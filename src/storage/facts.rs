//! The analytics facts (migration 0012) checked against history: each facts table
//! recomputed from `editing_project_history` alone, with the definitions the views had
//! before the facts existed, and the rows that differ counted. (Since 0014 the stretches
//! are a view pairing each row with `seq + 1`: checked all the same, it differs from the
//! window definition only where a project's `seq` has a gap.) Tests use it after runs of
//! the real writer, after the backfill and after crashes; an operator can use it after a
//! manual edit of history.

use super::error::StorageError;
use super::Store;

/// The facts tables, in the order [`Store::facts_drift`] reports them.
pub(crate) const FACT_TABLES: [&str; 4] = [
    "editing_project_stretches",
    "editing_project_lead_facts",
    "editing_project_daily_counts",
    "editing_project_stretch_days",
];

/// The two dialect differences of the recomputation: a UTC day and a duration in seconds.
struct Dialect {
    day: fn(&str) -> String,
    seconds: fn(&str, &str) -> String,
}

const POSTGRES: Dialect = Dialect {
    day: |t| format!("(({t}) AT TIME ZONE 'UTC')::date"),
    seconds: |from, to| format!("EXTRACT(EPOCH FROM (({to}) - ({from})))::double precision"),
};

const SQLITE: Dialect = Dialect {
    day: |t| format!("substr({t}, 1, 10)"),
    seconds: |from, to| format!("ROUND((julianday({to}) - julianday({from})) * 86400, 3)"),
};

impl Store {
    /// For each of [`FACT_TABLES`], how many rows differ from a recomputation from
    /// history (rows missing plus rows extra); all zero when the facts are right. Reads
    /// all of history: a check, not something to run at every cycle.
    pub async fn facts_drift(&self) -> Result<Vec<(&'static str, i64)>, StorageError> {
        let dialect = if self.backend() == "postgres" {
            &POSTGRES
        } else {
            &SQLITE
        };
        let mut out = Vec::with_capacity(FACT_TABLES.len());
        for (table, expected) in FACT_TABLES.iter().zip(recomputed(dialect)) {
            let actual = stored(table);
            let sql = format!(
                "SELECT COUNT(*) FROM (
                     SELECT * FROM (SELECT * FROM ({actual}) x EXCEPT SELECT * FROM ({expected}) y) a
                     UNION ALL
                     SELECT * FROM (SELECT * FROM ({expected}) x EXCEPT SELECT * FROM ({actual}) y) b
                 ) d"
            );
            out.push((*table, self.query_i64(&sql).await?));
        }
        Ok(out)
    }
}

/// A table's rows as the recomputation has them: the rollups' shards summed (a sum of
/// durations depends on the order it was added in, so totals compare to the millisecond).
fn stored(table: &str) -> String {
    match table {
        "editing_project_daily_counts" => "SELECT day, event, from_status, to_status, \
             from_business_status, to_business_status, SUM(transitions) \
             FROM editing_project_daily_counts GROUP BY 1, 2, 3, 4, 5, 6"
            .to_string(),
        "editing_project_stretch_days" => "SELECT day, status, business_status, SUM(stretches), \
             ROUND(CAST(SUM(total_seconds) AS numeric), 3), MAX(max_seconds) \
             FROM editing_project_stretch_days GROUP BY 1, 2, 3"
            .to_string(),
        _ => format!("SELECT * FROM {table}"),
    }
}

/// The recomputations, column for column in each table's order.
fn recomputed(d: &Dialect) -> [String; 4] {
    let stretches = format!(
        "SELECT project_id, seq, status, business_status, entered_at, left_at,
                {seconds} AS duration_seconds, skipped_on_entry, skipped_on_exit
         FROM (SELECT h.project_id, h.seq, h.event, h.status, h.business_status,
                      h.observed_at AS entered_at,
                      LEAD(h.observed_at) OVER w AS left_at,
                      h.skipped_states AS skipped_on_entry,
                      LEAD(h.skipped_states) OVER w AS skipped_on_exit
               FROM editing_project_history h
               WINDOW w AS (PARTITION BY h.project_id ORDER BY h.seq)) s
         WHERE event <> 'removed' AND left_at IS NOT NULL",
        seconds = (d.seconds)("entered_at", "left_at"),
    );
    // 0002's definition of editing_project_lead_times.
    let lead = format!(
        "SELECT project_id, first_status, first_seen_at, producing_at, finished_at, outcome,
                {to_producing}, {producing}, {to_finished}
         FROM (
        SELECT project_id, first_status, first_seen_at, producing_at,
               CASE WHEN failed_at IS NULL OR produced_at < failed_at THEN produced_at
                    ELSE failed_at END AS finished_at,
               CASE WHEN produced_at IS NOT NULL AND (failed_at IS NULL OR produced_at < failed_at)
                        THEN 'Produced'
                    WHEN failed_at IS NOT NULL THEN 'ProduceFailed' END AS outcome
        FROM (SELECT h.project_id,
                     MIN(CASE WHEN h.event = 'first_seen' THEN h.status END) AS first_status,
                     MIN(h.observed_at) AS first_seen_at,
                     MIN(CASE WHEN h.status = 'Producing' THEN h.observed_at END) AS producing_at,
                     MIN(CASE WHEN h.status = 'Produced' AND h.seq > COALESCE(f.seq, 0)
                              THEN h.observed_at END) AS produced_at,
                     MIN(CASE WHEN h.status = 'ProduceFailed' AND h.seq > COALESCE(f.seq, 0)
                              THEN h.observed_at END) AS failed_at
              FROM editing_project_history h
              LEFT JOIN (SELECT project_id, MIN(seq) AS seq FROM editing_project_history
                         WHERE status = 'Producing' GROUP BY project_id) f
                ON f.project_id = h.project_id
              GROUP BY h.project_id) firsts) ends",
        to_producing = (d.seconds)("first_seen_at", "producing_at"),
        producing = (d.seconds)("producing_at", "finished_at"),
        to_finished = (d.seconds)("first_seen_at", "finished_at"),
    );
    let daily = format!(
        "SELECT {day}, event, COALESCE(previous_status, ''), COALESCE(status, ''),
                COALESCE(previous_business_status, ''), COALESCE(business_status, ''),
                COUNT(*)
         FROM editing_project_history
         GROUP BY 1, 2, 3, 4, 5, 6",
        day = (d.day)("observed_at"),
    );
    let days = format!(
        "SELECT {day}, COALESCE(status, ''), COALESCE(business_status, ''), COUNT(*),
                ROUND(CAST(SUM(duration_seconds) AS numeric), 3), MAX(duration_seconds)
         FROM ({stretches}) s
         GROUP BY 1, 2, 3",
        day = (d.day)("left_at"),
    );
    [stretches, lead, daily, days]
}

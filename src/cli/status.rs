//! `ice-sync status [ID...]`: the tracked projects, streamed from the database (a
//! million rows never sit in memory), filtered by `--status`, `--failing`, `--stale`,
//! cut by `--limit`, as a table or one JSON document. Projects listed in `sync.projects`
//! that the daemon has not synced into the database yet are shown too, marked as such.
//!
//! Exit codes: 0; 1 when a named ID is not tracked at all; 3 when `--stale` found any.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use super::ids::parse_ids;
use super::output::{
    self, opt_rfc3339, or_dash, rfc3339, truncate, ts_or_dash, JsonList, OutputFormat, StreamTable,
};
use super::usage;
use crate::config::Settings;
use crate::domain::{ProjectId, Timestamp};
use crate::storage::{open_read_only, ProjectStatus, ReadOnlyError, StatusQuery, Store};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StatusArgs {
    /// Only these projects (`-` reads IDs from stdin)
    pub(crate) ids: Vec<String>,
    /// Only enabled projects not polled within DURATION (e.g. `10m`; a project never
    /// polled counts from when it was tracked), oldest first; exit 3 if there are any
    #[arg(long, value_name = "DURATION", value_parser = crate::config::bounds::parse_cli_duration)]
    pub(crate) stale: Option<Duration>,
    /// Only projects whose status or business status is S (e.g. `Producing`)
    #[arg(long = "status", value_name = "S")]
    pub(crate) status: Option<String>,
    /// Only projects whose last poll failed
    #[arg(long)]
    pub(crate) failing: bool,
    /// At most N rows
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub(crate) output: OutputFormat,
}

/// One project in `status --output json` (field names are a contract: docs/cli.md).
#[derive(Debug, Serialize)]
struct JsonProject {
    project_id: String,
    source: String,
    enabled: bool,
    /// False for a `sync.projects` entry the daemon has not written to the database yet.
    in_database: bool,
    status: Option<String>,
    business_status: Option<String>,
    removed: bool,
    added_at: Option<String>,
    last_polled_at: Option<String>,
    last_attempt_at: Option<String>,
    next_poll_at: Option<String>,
    last_changed_at: Option<String>,
    removed_at: Option<String>,
    last_error: Option<String>,
    consecutive_failures: i64,
}

impl JsonProject {
    fn from_row(r: &ProjectStatus) -> Self {
        Self {
            project_id: r.project_id.to_string(),
            source: r.source.clone(),
            enabled: r.enabled,
            in_database: true,
            status: r.status.clone(),
            business_status: r.business_status.clone(),
            removed: r.removed_at.is_some(),
            added_at: Some(rfc3339(&r.added_at)),
            last_polled_at: opt_rfc3339(&r.last_polled_at),
            last_attempt_at: opt_rfc3339(&r.last_attempt_at),
            // NEVER is "due at once", not a time anyone should read.
            next_poll_at: opt_rfc3339(&r.next_poll_at.filter(|t| *t != Timestamp::NEVER)),
            last_changed_at: opt_rfc3339(&r.last_changed_at),
            removed_at: opt_rfc3339(&r.removed_at),
            last_error: r.last_error.clone(),
            consecutive_failures: r.consecutive_failures,
        }
    }

    fn from_config(id: &ProjectId) -> Self {
        Self {
            project_id: id.to_string(),
            source: "config".to_string(),
            enabled: true,
            in_database: false,
            status: None,
            business_status: None,
            removed: false,
            added_at: None,
            last_polled_at: None,
            last_attempt_at: None,
            next_poll_at: None,
            last_changed_at: None,
            removed_at: None,
            last_error: None,
            consecutive_failures: 0,
        }
    }
}

const HEADERS: &[&str] = &[
    "PROJECT",
    "STATUS",
    "BUSINESS",
    "LAST POLLED (UTC)",
    "LAST CHANGE (UTC)",
    "LAST ERROR",
];

const STALE_HEADERS: &[&str] = &[
    "PROJECT",
    "STATUS",
    "BUSINESS",
    "LAST POLL (UTC)",
    "AGE",
    "LAST ANSWER (UTC)",
    "NEXT DUE (UTC)",
    "LAST ERROR",
];

fn table_row(r: &ProjectStatus) -> Vec<String> {
    let status = match (&r.removed_at, r.enabled) {
        (Some(_), _) => format!("{} (removed)", or_dash(&r.status)),
        (None, false) => format!("{} (disabled)", or_dash(&r.status)),
        _ => or_dash(&r.status),
    };
    vec![
        r.project_id.to_string(),
        status,
        or_dash(&r.business_status),
        ts_or_dash(&r.last_polled_at),
        ts_or_dash(&r.last_changed_at),
        r.last_error
            .as_deref()
            .map(|e| truncate(e, 60))
            .unwrap_or_else(|| "-".to_string()),
    ]
}

fn stale_row(r: &ProjectStatus, now: Timestamp) -> Vec<String> {
    let age = (now.as_datetime() - r.observed_since().as_datetime())
        .to_std()
        .unwrap_or_default();
    let age = humantime::format_duration(Duration::from_secs(age.as_secs()));
    let last_poll = match r.last_attempt_at {
        Some(t) => t.to_string(),
        None => format!("never (tracked {})", r.added_at),
    };
    let due = if r.every_tick {
        "every tick".to_string()
    } else {
        ts_or_dash(&r.next_poll_at)
    };
    let error = match &r.last_error {
        Some(e) => format!("{} ({} in a row)", truncate(e, 50), r.consecutive_failures),
        None => "-".to_string(),
    };
    vec![
        r.project_id.to_string(),
        or_dash(&r.status),
        or_dash(&r.business_status),
        last_poll,
        age.to_string(),
        ts_or_dash(&r.last_polled_at),
        due,
        error,
    ]
}

fn config_row(id: &ProjectId) -> Vec<String> {
    let mut row = vec![
        id.to_string(),
        "(in sync.projects, not synced yet)".to_string(),
    ];
    row.extend(std::iter::repeat_n("-".to_string(), HEADERS.len() - 2));
    row
}

/// Where rows go: a table or a JSON list.
enum Sink<W: Write> {
    Table(StreamTable<W>),
    Json(JsonList<W>),
}

impl<W: Write> Sink<W> {
    fn push(&mut self, table: Vec<String>, json: &JsonProject) -> std::io::Result<()> {
        match self {
            Sink::Table(t) => t.row(table),
            Sink::Json(j) => j.item(json),
        }
    }
}

pub(crate) async fn run(settings: &Settings, args: StatusArgs) -> anyhow::Result<u8> {
    let ids = parse_ids(&args.ids)?;
    let store = match open_read_only(&settings.database).await {
        Ok(store) => Some(store),
        // Nothing synced yet: what sync.projects lists is still worth showing.
        Err(ReadOnlyError::NotCreatedYet(why)) => {
            eprintln!("note: {why}");
            None
        }
        Err(ReadOnlyError::SchemaMismatch(why)) => return Err(usage(why)),
        Err(e) => return Err(e.into()),
    };
    let result = print(settings, &args, ids, store.as_ref()).await;
    if let Some(store) = store {
        store.close().await;
    }
    result
}

/// Prints what `args` asks for; returns the exit code.
async fn print(
    settings: &Settings,
    args: &StatusArgs,
    ids: Vec<ProjectId>,
    store: Option<&Store>,
) -> anyhow::Result<u8> {
    let now = match store {
        // Polls are stamped with the database's clock on PostgreSQL: measure with it.
        Some(s) => s.database_now().await?.unwrap_or_else(Timestamp::now),
        None => Timestamp::now(),
    };
    let query = StatusQuery {
        ids: ids.clone(),
        status: args.status.clone(),
        failing: args.failing,
        stale_before: stale_before(args, now)?,
        limit: args.limit,
    };
    let mut rows = Rows::start(args, now, !ids.is_empty())?;
    if let Some(store) = store {
        rows.push_stored(store, &query).await?;
    }
    // Config projects the database does not know yet; filters on polls exclude them.
    if args.status.is_none() && !args.failing && args.stale.is_none() {
        for id in unsynced_config(settings, store, &ids).await? {
            if args.limit.is_some_and(|n| rows.shown >= n) {
                break;
            }
            rows.push_configured(id)?;
        }
    }
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| !rows.found.contains(*id))
        .map(|id| id.to_string())
        .collect();
    let shown = rows.shown;
    rows.finish(args, &unknown)?;
    if !unknown.is_empty() {
        eprintln!(
            "error: not tracked: {} (see `ice-sync track add`)",
            unknown.join(", ")
        );
        return Ok(1);
    }
    Ok(if args.stale.is_some() && shown > 0 {
        3
    } else {
        0
    })
}

/// `--stale D`: polls before `now - D` are stale.
fn stale_before(args: &StatusArgs, now: Timestamp) -> anyhow::Result<Option<Timestamp>> {
    let Some(within) = args.stale else {
        return Ok(None);
    };
    let within = chrono::Duration::from_std(within)
        .map_err(|_| usage(format!("--stale {within:?} is too long")))?;
    Ok(Some(now.shifted(-within)))
}

/// The rows printed so far: where they go, how many, and which named IDs were seen.
struct Rows {
    sink: Sink<std::io::BufWriter<std::io::StdoutLock<'static>>>,
    stale: bool,
    now: Timestamp,
    /// Whether IDs were named (only then is `found` kept: it would grow with every row).
    named: bool,
    found: HashSet<ProjectId>,
    shown: u64,
}

impl Rows {
    fn start(args: &StatusArgs, now: Timestamp, named: bool) -> std::io::Result<Self> {
        let out = output::stdout();
        let sink = match args.output {
            OutputFormat::Table if args.stale.is_some() => {
                Sink::Table(StreamTable::new(out, STALE_HEADERS))
            }
            OutputFormat::Table => Sink::Table(StreamTable::new(out, HEADERS)),
            OutputFormat::Json => Sink::Json(JsonList::start(out, "projects")?),
        };
        Ok(Self {
            sink,
            stale: args.stale.is_some(),
            now,
            named,
            found: HashSet::new(),
            shown: 0,
        })
    }

    /// Streams the database's rows through the sink, one at a time.
    async fn push_stored(&mut self, store: &Store, query: &StatusQuery) -> anyhow::Result<()> {
        let mut written: std::io::Result<()> = Ok(());
        let mut each = |r: ProjectStatus| {
            let table = if self.stale {
                stale_row(&r, self.now)
            } else {
                table_row(&r)
            };
            written = self.sink.push(table, &JsonProject::from_row(&r));
            if self.named {
                self.found.insert(r.project_id.clone());
            }
            written.is_ok()
        };
        let shown = store.reads().status_each(query, &mut each).await?;
        written?;
        self.shown += shown;
        Ok(())
    }

    fn push_configured(&mut self, id: ProjectId) -> std::io::Result<()> {
        self.sink
            .push(config_row(&id), &JsonProject::from_config(&id))?;
        self.found.insert(id);
        self.shown += 1;
        Ok(())
    }

    /// The closing line (table) or the summary fields (JSON).
    fn finish(self, args: &StatusArgs, unknown: &[String]) -> std::io::Result<()> {
        let shown = self.shown;
        match self.sink {
            Sink::Table(t) => {
                let mut out = t.finish()?;
                match args.stale {
                    Some(within) => writeln!(
                        out,
                        "{shown} enabled project(s) not polled within {}",
                        humantime::format_duration(within)
                    )?,
                    None => writeln!(out, "{shown} tracked project(s)")?,
                }
                out.flush()
            }
            Sink::Json(j) => j
                .finish(serde_json::json!({ "count": shown, "not_tracked": unknown }))
                .map(|_| ()),
        }
    }
}

/// The `sync.projects` entries (among `ids`, if any) that have no row in the database.
pub(crate) async fn unsynced_config(
    settings: &Settings,
    store: Option<&Store>,
    ids: &[ProjectId],
) -> anyhow::Result<Vec<ProjectId>> {
    let wanted: Option<HashSet<&ProjectId>> = (!ids.is_empty()).then(|| ids.iter().collect());
    let mut configured: Vec<ProjectId> = settings
        .sync
        .projects
        .iter()
        .filter(|id| wanted.as_ref().is_none_or(|w| w.contains(id)))
        .cloned()
        .collect();
    configured.sort();
    configured.dedup();
    let Some(store) = store else {
        return Ok(configured);
    };
    let present: HashSet<ProjectId> = store
        .tracking()
        .tracked_among(&configured)
        .await?
        .into_iter()
        .map(|r| r.project_id)
        .collect();
    Ok(configured
        .into_iter()
        .filter(|id| !present.contains(id))
        .collect())
}

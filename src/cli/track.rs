//! `ice-sync track add|remove|list|import`: what is tracked, with honest counts.
//!
//! Before a write, the IDs are looked up ([`Store::tracked_among`]) and sorted into new,
//! already tracked, re-enabled, and moved to this source (a `config` or discovered
//! project taken over by hand, so removing it from the config no longer disables it).
//! `cli` and `import` are both "by hand": one never takes a project from the other.
//! `remove` names the IDs that were not tracked (exit 1) and has `--dry-run`. `list`
//! streams and is read-only, and shows `sync.projects` entries not synced yet.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::ids::parse_ids;
use super::output::{self, rfc3339, JsonList, OutputFormat, StreamTable};
use super::{usage, Exit};
use crate::app;
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::ops::progress;
use crate::storage::{open_read_only, ReadOnlyError, Store, TrackedRow};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TrackAction {
    /// Track project IDs (`-` reads them from stdin, one per line)
    Add {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Stop tracking project IDs (their rows and history stay)
    Remove {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Say what would be removed, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List tracked projects
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Track every ID in FILE, one per line (`-` for stdin; `#` starts a comment)
    Import { file: PathBuf },
}

/// What a `track add` or `import` of some IDs does, decided before writing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AddCounts {
    pub(crate) new: u64,
    pub(crate) already: u64,
    pub(crate) reenabled: u64,
    /// (previous source, how many) taken over by this source.
    pub(crate) moved: Vec<(String, u64)>,
}

/// Sorts distinct `ids` by what adding them under `source` does, given their rows.
pub(crate) fn classify_add(ids: &[ProjectId], rows: &[TrackedRow], source: &str) -> AddCounts {
    let by_id: HashMap<&ProjectId, &TrackedRow> = rows.iter().map(|r| (&r.project_id, r)).collect();
    let by_hand = |s: &str| s == "cli" || s == "import";
    let mut counts = AddCounts::default();
    let mut moved: HashMap<String, u64> = HashMap::new();
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            continue;
        }
        match by_id.get(id) {
            None => counts.new += 1,
            Some(r) if !r.enabled => counts.reenabled += 1,
            Some(r) if r.source != source && by_hand(source) && !by_hand(&r.source) => {
                *moved.entry(r.source.clone()).or_default() += 1
            }
            Some(_) => counts.already += 1,
        }
    }
    counts.moved = moved.into_iter().collect();
    counts.moved.sort();
    counts
}

impl AddCounts {
    fn sentence(&self, source: &str) -> String {
        let mut text = format!(
            "{} new, {} already tracked, {} re-enabled",
            self.new, self.already, self.reenabled
        );
        for (from, n) in &self.moved {
            text.push_str(&format!(", {n} moved from source {from} to {source}"));
        }
        text
    }
}

pub(crate) async fn run(settings: &Settings, action: TrackAction) -> anyhow::Result<u8> {
    match action {
        TrackAction::List { output } => list(settings, output).await,
        TrackAction::Remove { ids, dry_run } => remove(settings, &parse_ids(&ids)?, dry_run).await,
        TrackAction::Add { ids } => {
            // Every ID is checked before the database is touched: bad input writes nothing.
            let ids = parse_ids(&ids)?;
            let store = app::open_store(settings).await?;
            let result = add(&store, &ids, "cli").await;
            store.close().await;
            println!(
                "tracking {} project(s): {}",
                ids.len(),
                result?.sentence("cli")
            );
            Ok(0)
        }
        TrackAction::Import { file } => {
            let ids = read_id_file(&file)?;
            let store = app::open_store(settings).await?;
            let result = import(&store, &ids).await;
            store.close().await;
            println!(
                "imported {} ID(s): {}",
                ids.len(),
                result?.sentence("import")
            );
            Ok(0)
        }
    }
}

async fn add(store: &Store, ids: &[ProjectId], source: &str) -> anyhow::Result<AddCounts> {
    let counts = classify_add(ids, &store.tracking().tracked_among(ids).await?, source);
    store
        .tracking()
        .track_add(ids, source, app::now(store).await?)
        .await?;
    Ok(counts)
}

/// IDs per `track import` statement: big files advance a bar, and a failure keeps
/// what was committed (a rerun skips IDs already tracked). One statement of 10,000 IDs
/// is ~350 KB of JSON.
const IMPORT_CHUNK: usize = 10_000;

/// Tracks `ids` a chunk at a time, with a bar on a terminal for big files.
async fn import(store: &Store, ids: &[ProjectId]) -> anyhow::Result<AddCounts> {
    let bar = progress::import_bar(ids.len());
    let mut total = AddCounts::default();
    let mut moved: HashMap<String, u64> = HashMap::new();
    for (n, chunk) in ids.chunks(IMPORT_CHUNK).enumerate() {
        let done = n * IMPORT_CHUNK;
        let counts = add(store, chunk, "import").await.with_context(|| {
            format!(
                "importing stopped after {done} of {} IDs; run the import again to finish \
                 (IDs already tracked are skipped)",
                ids.len()
            )
        })?;
        total.new += counts.new;
        total.already += counts.already;
        total.reenabled += counts.reenabled;
        for (from, k) in counts.moved {
            *moved.entry(from).or_default() += k;
        }
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    if let Some(bar) = bar {
        progress::finish_import_bar(bar);
    }
    total.moved = moved.into_iter().collect();
    total.moved.sort();
    Ok(total)
}

async fn remove(settings: &Settings, ids: &[ProjectId], dry_run: bool) -> anyhow::Result<u8> {
    let store = if dry_run {
        open_read_only(&settings.database)
            .await
            .map_err(|e| match e {
                ReadOnlyError::SchemaMismatch(why) => usage(why),
                e => e.into(),
            })?
    } else {
        app::open_store(settings).await?
    };
    let result = async {
        let tracked: HashSet<ProjectId> = store
            .tracking()
            .tracked_among(ids)
            .await?
            .into_iter()
            .map(|r| r.project_id)
            .collect();
        if !dry_run {
            store.tracking().track_remove(ids).await?;
        }
        anyhow::Ok(tracked)
    }
    .await;
    store.close().await;
    let tracked = result?;
    let mut unknown: Vec<&str> = ids
        .iter()
        .filter(|id| !tracked.contains(*id))
        .map(|id| id.as_str())
        .collect();
    unknown.sort();
    unknown.dedup();
    let verb = if dry_run { "would stop" } else { "stopped" };
    println!(
        "{verb} tracking {} project(s); their rows and history are kept",
        tracked.len()
    );
    if dry_run {
        let mut names: Vec<&str> = tracked.iter().map(|id| id.as_str()).collect();
        names.sort();
        for id in names {
            println!("  {id}");
        }
    }
    let configured: HashSet<&ProjectId> = settings.sync.projects.iter().collect();
    let in_config: Vec<&str> = ids
        .iter()
        .filter(|id| configured.contains(id))
        .map(|id| id.as_str())
        .collect();
    if !in_config.is_empty() {
        eprintln!(
            "note: {} listed in sync.projects and will be tracked again when the daemon starts; remove it from the config too",
            in_config.join(", ")
        );
    }
    if unknown.is_empty() {
        return Ok(0);
    }
    Err(Exit {
        code: 1,
        message: format!("not tracked, nothing to remove: {}", unknown.join(", ")),
    }
    .into())
}

/// `track list --output json` (field names are a contract: docs/cli.md).
#[derive(Debug, Serialize)]
struct JsonTracked {
    project_id: String,
    source: String,
    enabled: bool,
    added_at: Option<String>,
    in_database: bool,
}

async fn list(settings: &Settings, format: OutputFormat) -> anyhow::Result<u8> {
    let store = match open_read_only(&settings.database).await {
        Ok(store) => Some(store),
        Err(ReadOnlyError::NotCreatedYet(why)) => {
            eprintln!("note: {why}");
            None
        }
        Err(ReadOnlyError::SchemaMismatch(why)) => return Err(usage(why)),
        Err(e) => return Err(e.into()),
    };
    let result = print_list(settings, store.as_ref(), format).await;
    if let Some(store) = store {
        store.close().await;
    }
    result
}

async fn print_list(
    settings: &Settings,
    store: Option<&Store>,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let headers = ["PROJECT", "SOURCE", "ENABLED", "ADDED (UTC)"];
    let out = output::stdout();
    let (mut table, mut json) = match format {
        OutputFormat::Table => (Some(StreamTable::new(out, &headers)), None),
        OutputFormat::Json => (None, Some(JsonList::start(out, "tracked")?)),
    };
    let mut push = |row: JsonTracked, added: String| -> std::io::Result<()> {
        match (&mut table, &mut json) {
            (Some(t), _) => t.row(vec![
                row.project_id.clone(),
                row.source.clone(),
                if row.enabled { "yes" } else { "no" }.to_string(),
                added,
            ]),
            (_, Some(j)) => j.item(&row),
            _ => Ok(()),
        }
    };
    let mut written = Ok(());
    let mut count = match store {
        Some(store) => {
            let mut each = |r: TrackedRow| {
                let row = JsonTracked {
                    project_id: r.project_id.to_string(),
                    source: r.source,
                    enabled: r.enabled,
                    added_at: Some(rfc3339(&r.added_at)),
                    in_database: true,
                };
                written = push(row, r.added_at.to_string());
                written.is_ok()
            };
            store.tracking().track_list_each(&mut each).await?
        }
        None => 0,
    };
    written?;
    for id in super::status::unsynced_config(settings, store, &[]).await? {
        let row = JsonTracked {
            project_id: id.to_string(),
            source: "config".to_string(),
            enabled: true,
            added_at: None,
            in_database: false,
        };
        push(row, "(in sync.projects, not synced yet)".to_string())?;
        count += 1;
    }
    match (table, json) {
        (Some(t), _) => {
            let mut out = t.finish()?;
            writeln!(out, "{count} tracked project(s)")?;
            out.flush()?;
        }
        (_, Some(j)) => {
            j.finish(serde_json::json!({ "count": count }))?;
        }
        _ => {}
    }
    Ok(0)
}

/// IDs from a file, one per line, `#` comments allowed; `-` is stdin.
fn read_id_file(file: &std::path::Path) -> anyhow::Result<Vec<ProjectId>> {
    if file.as_os_str() == "-" {
        return parse_ids(&["-".to_string()]);
    }
    crate::config::id_file::read_id_file(file).map_err(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn row(id: &str, source: &str, enabled: bool) -> TrackedRow {
        TrackedRow {
            project_id: ProjectId::parse(id).expect("id"),
            added_at: Timestamp::NEVER,
            source: source.to_string(),
            enabled,
        }
    }

    #[test]
    fn counts_new_already_reenabled_and_moved() {
        let ids: Vec<ProjectId> = ["a", "b", "c", "d", "e", "a"]
            .iter()
            .map(|s| ProjectId::parse(s).expect("id"))
            .collect();
        let rows = [
            row("b", "import", true),
            row("c", "config", true),
            row("d", "cli", false),
            row("e", "cli", true),
        ];
        let counts = classify_add(&ids, &rows, "cli");
        assert_eq!(
            counts,
            AddCounts {
                new: 1,
                already: 2,
                reenabled: 1,
                moved: vec![("config".to_string(), 1)],
            }
        );
    }
}

//! `ice-sync history ID`: the transitions of one project, oldest first, as a table or
//! one JSON document. Read-only. Exit 1 when the project is neither tracked nor has any
//! history: a typo should not look like "nothing happened".

use std::io::Write;

use serde::Serialize;

use super::output::{self, json_document, or_dash, rfc3339, OutputFormat, StreamTable};
use super::usage;
use crate::config::Settings;
use crate::domain::ProjectId;
use crate::storage::{open_read_only, HistoryRow, ReadOnlyError};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HistoryArgs {
    pub(crate) project_id: String,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub(crate) output: OutputFormat,
}

/// `history --output json` (field names are a contract: docs/cli.md).
#[derive(Debug, Serialize)]
struct JsonHistory {
    project_id: String,
    tracked: bool,
    transitions: Vec<JsonTransition>,
}

#[derive(Debug, Serialize)]
struct JsonTransition {
    seq: i64,
    observed_at: String,
    event: String,
    previous_status: Option<String>,
    status: Option<String>,
    previous_business_status: Option<String>,
    business_status: Option<String>,
    skipped_states: Option<String>,
    request_id: Option<String>,
}

impl From<&HistoryRow> for JsonTransition {
    fn from(r: &HistoryRow) -> Self {
        Self {
            seq: r.seq,
            observed_at: rfc3339(&r.observed_at),
            event: r.event.clone(),
            previous_status: r.previous_status.clone(),
            status: r.status.clone(),
            previous_business_status: r.previous_business_status.clone(),
            business_status: r.business_status.clone(),
            skipped_states: r.skipped_states.clone(),
            request_id: r.request_id.clone(),
        }
    }
}

pub(crate) async fn run(settings: &Settings, args: HistoryArgs) -> anyhow::Result<u8> {
    let id = ProjectId::parse(&args.project_id).map_err(usage)?;
    let in_config = settings.sync.projects.contains(&id);
    let store = match open_read_only(&settings.database).await {
        Ok(store) => store,
        Err(ReadOnlyError::NotCreatedYet(why)) if in_config => {
            eprintln!("note: {why}");
            return print(&id, true, &[], args.output);
        }
        Err(ReadOnlyError::SchemaMismatch(why)) => return Err(usage(why)),
        Err(e) => return Err(e.into()),
    };
    let rows = store.reads().history(&id).await;
    let tracked = store
        .tracking()
        .tracked_among(std::slice::from_ref(&id))
        .await;
    store.close().await;
    let (rows, tracked) = (rows?, !tracked?.is_empty() || in_config);
    if rows.is_empty() && !tracked {
        return Err(super::Exit {
            code: 1,
            message: format!(
                "project {id} is not tracked and has no history (a typo? see `ice-sync track list`)"
            ),
        }
        .into());
    }
    print(&id, tracked, &rows, args.output)
}

fn print(
    id: &ProjectId,
    tracked: bool,
    rows: &[HistoryRow],
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let mut out = output::stdout();
    if format == OutputFormat::Json {
        json_document(
            &mut out,
            &JsonHistory {
                project_id: id.to_string(),
                tracked,
                transitions: rows.iter().map(JsonTransition::from).collect(),
            },
        )?;
        return Ok(0);
    }
    if rows.is_empty() {
        writeln!(
            out,
            "no history for {id}: it is tracked but has not been observed yet (the daemon polls it at its next tick)"
        )?;
        out.flush()?;
        return Ok(0);
    }
    let mut table = StreamTable::new(
        out,
        &[
            "OBSERVED (UTC)",
            "EVENT",
            "STATUS",
            "BUSINESS STATUS",
            "SKIPPED",
            "REQUEST ID",
        ],
    );
    for r in rows {
        table.row(vec![
            r.observed_at.to_string(),
            r.event.clone(),
            format!("{} -> {}", or_dash(&r.previous_status), or_dash(&r.status)),
            format!(
                "{} -> {}",
                or_dash(&r.previous_business_status),
                or_dash(&r.business_status)
            ),
            or_dash(&r.skipped_states),
            or_dash(&r.request_id),
        ])?;
    }
    table.finish()?.flush()?;
    Ok(0)
}

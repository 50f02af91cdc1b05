//! `ice-sync prune [--dry-run]`: one retention pass now, printing per table how many rows
//! it removed (or, dry, would remove) and the cutoff. A dry run counts with the same
//! conditions the deletes use, so both print the same numbers for the same database.

use tokio_util::sync::CancellationToken;

use super::Pruned;
use crate::config::Settings;
use crate::table::print_table;

#[derive(Debug, clap::Args)]
pub(crate) struct PruneArgs {
    /// Count what would be removed; delete nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Runs the command; returns the exit code.
pub(crate) async fn run(settings: &Settings, args: &PruneArgs) -> anyhow::Result<u8> {
    let store = crate::app::open_store(settings).await?;
    let now = super::now(&store, &crate::clock::system()).await?;
    let rules = super::rules(settings);
    let pruned = if args.dry_run {
        super::count(&store, &rules, now).await?
    } else {
        // A stop (Ctrl-C) ends the process; what was deleted so far stays deleted.
        super::prune(&store, &rules, now, &CancellationToken::new()).await?
    };
    store.close().await;
    print_report(&pruned, args.dry_run);
    Ok(0)
}

fn print_report(pruned: &[Pruned], dry_run: bool) {
    let table: Vec<Vec<String>> = pruned
        .iter()
        .map(|p| {
            vec![
                p.rule.target.table().to_string(),
                p.rows.to_string(),
                p.before.to_string(),
                format!("{} = {}", p.rule.key, super::show(p.rule.keep)),
            ]
        })
        .collect();
    let verb = if dry_run { "WOULD REMOVE" } else { "REMOVED" };
    print_table(&["TABLE", verb, "OLDER THAN (UTC)", "SETTING"], &table);
    let total: u64 = pruned.iter().map(|p| p.rows).sum();
    if dry_run {
        println!("dry run: {total} row(s) would be removed, nothing was deleted");
    } else {
        println!("removed {total} row(s)");
    }
    println!("history and current rows are never pruned");
}

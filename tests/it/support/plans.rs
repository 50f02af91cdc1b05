//! Reading a claim statement's plan (`Store::explain_claim`): whether the step that picks
//! the projects reads them from the expected index, in its order, without a sort or a full
//! scan of `tracked_projects`. Sorting the claimed batch afterwards (at most `limit` rows)
//! is fine, so only the picking step is inspected.

use super::Backend;

/// `true` when the picking step of `plan` (PostgreSQL: the `due` CTE; SQLite: the whole
/// plan) uses `index` and neither sorts nor scans `tracked_projects`.
pub fn picks_in_index_order(backend: Backend, plan: &str, index: &str) -> bool {
    let picking = match backend {
        Backend::Postgres => plan
            .split("CTE due")
            .nth(1)
            .and_then(|rest| rest.split("CTE claimed").next())
            .unwrap_or_default()
            .to_string(),
        Backend::Sqlite => plan.to_string(),
    };
    let sorts = picking.contains("Sort") || picking.contains("TEMP B-TREE FOR ORDER BY");
    let scans = picking.lines().any(|l| {
        l.contains("Seq Scan on tracked_projects")
            || (l.trim_start().starts_with("SCAN tracked_projects") && !l.contains("INDEX"))
    });
    !sorts && !scans && picking.contains(index)
}

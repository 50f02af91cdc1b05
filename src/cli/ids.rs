//! Project IDs given on the command line (`track add`, `refresh`): as arguments, or `-`
//! for one per line on stdin.

use crate::config::id_file::read_ids;
use crate::domain::ProjectId;

use super::exit::usage;

/// Parses IDs, expanding `-` to stdin lines. Any invalid ID fails the whole command
/// before anything is written.
pub(crate) fn parse_ids(raw: &[String]) -> anyhow::Result<Vec<ProjectId>> {
    let mut ids = Vec::new();
    for item in raw {
        if item == "-" {
            ids.extend(read_ids(std::io::stdin().lock(), "stdin").map_err(usage)?);
        } else {
            ids.push(ProjectId::parse(item).map_err(usage)?);
        }
    }
    Ok(ids)
}

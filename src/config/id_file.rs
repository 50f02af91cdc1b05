//! Files of project IDs, one per line: `sync.projects_file` and `ice-sync track import`.
//!
//! `#` starts a comment, blank lines are skipped, surrounding spaces are ignored. The
//! file is read line by line, so a million IDs cost the IDs themselves (~70 MB) and not
//! a copy of the file or a TOML array besides them.

use std::io::BufRead;
use std::path::Path;

use crate::domain::{InvalidProjectId, ProjectId};

/// Why an ID file could not be used: the message names the file and, for a bad ID,
/// its line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct IdFileError(String);

/// The ID on one line, if it has one.
fn id_of_line(line: &str) -> Result<Option<ProjectId>, InvalidProjectId> {
    let content = line.split('#').next().unwrap_or("").trim();
    if content.is_empty() {
        return Ok(None);
    }
    ProjectId::parse(content).map(Some)
}

/// Every ID of `reader`; `origin` names it in errors (a path, or "stdin").
pub(crate) fn read_ids(reader: impl BufRead, origin: &str) -> Result<Vec<ProjectId>, IdFileError> {
    let mut ids = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| IdFileError(format!("cannot read {origin}: {e}")))?;
        match id_of_line(&line) {
            Ok(Some(id)) => ids.push(id),
            Ok(None) => {}
            Err(e) => return Err(IdFileError(format!("{origin}:{}: {e}", n + 1))),
        }
    }
    Ok(ids)
}

/// Every ID of the file at `path`.
pub(crate) fn read_id_file(path: &Path) -> Result<Vec<ProjectId>, IdFileError> {
    let file = std::fs::File::open(path).map_err(|e| {
        IdFileError(format!(
            "cannot read {}: {e} (it should list one project ID per line)",
            path.display()
        ))
    })?;
    read_ids(std::io::BufReader::new(file), &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_spaces_are_skipped() {
        let text = "# tracked for the spring campaign\n\n  aaa  \nbbb # the launch\n\t\n";
        let ids = read_ids(text.as_bytes(), "ids.txt").expect("valid file");
        let ids: Vec<&str> = ids.iter().map(ProjectId::as_str).collect();
        assert_eq!(ids, ["aaa", "bbb"]);
    }

    #[test]
    fn a_bad_id_names_its_file_and_line() {
        let e = read_ids("aaa\nbad id!\n".as_bytes(), "ids.txt").unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("ids.txt:2: "), "{e}");
        assert!(e.contains("bad id!"), "{e}");
    }

    #[test]
    fn a_missing_file_says_what_it_should_hold() {
        let e = read_id_file(Path::new("/nonexistent/ids.txt")).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("/nonexistent/ids.txt"), "{e}");
        assert!(e.contains("one project ID per line"), "{e}");
    }
}

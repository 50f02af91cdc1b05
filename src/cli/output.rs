//! How commands print: `--output table|json`, tables streamed a page at a time, JSON
//! as one document written as rows arrive, and a closed pipe (`| head -1`) ending the
//! command quietly with exit 0 instead of a panic.
//!
//! Every write returns `io::Result`; [`is_closed_pipe`] recognises the error anywhere in
//! a command's error chain, and `main` turns it into exit 0. [`quiet_on_closed_pipe`]
//! covers the `println!`s this module does not own (a panic hook).

use std::io::{self, Write};

use serde::Serialize;

use crate::domain::Timestamp;

/// `--output`: for people (`table`) or for scripts (`json`: one document, stable names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Rows buffered before column widths are fixed: the first page sets them, later rows
/// stream through (a wider cell just pushes its line right).
const WIDTH_SAMPLE: usize = 500;

/// Stdout, buffered.
pub(crate) fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::new(io::stdout().lock())
}

/// Whether `e` (or anything it wraps) is a write to a closed pipe.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A panic hook that ends the process with exit 0 when the panic is `println!` finding
/// stdout closed (the reader went away); any other panic is reported as usual.
pub fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// A table printed as rows arrive, in constant memory.
pub(crate) struct StreamTable<W: Write> {
    out: W,
    headers: Vec<String>,
    widths: Option<Vec<usize>>,
    buffer: Vec<Vec<String>>,
}

impl<W: Write> StreamTable<W> {
    pub(crate) fn new(out: W, headers: &[&str]) -> Self {
        Self {
            out,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            widths: None,
            buffer: Vec::new(),
        }
    }

    /// Cells come from ICE and the database: control characters are escaped here, so no
    /// value can move the cursor, clear the screen or forge a row.
    pub(crate) fn row(&mut self, cells: Vec<String>) -> io::Result<()> {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|c| match crate::text::printable(&c) {
                std::borrow::Cow::Borrowed(_) => c,
                std::borrow::Cow::Owned(escaped) => escaped,
            })
            .collect();
        match &self.widths {
            Some(widths) => write_line(&mut self.out, widths, &cells),
            None => {
                self.buffer.push(cells);
                if self.buffer.len() >= WIDTH_SAMPLE {
                    self.flush_sample()?;
                }
                Ok(())
            }
        }
    }

    fn flush_sample(&mut self) -> io::Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.buffer {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        write_line(&mut self.out, &widths, &self.headers)?;
        for row in std::mem::take(&mut self.buffer) {
            write_line(&mut self.out, &widths, &row)?;
        }
        self.widths = Some(widths);
        Ok(())
    }

    /// Prints what is buffered (the header, even with no rows) and hands the writer back.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.widths.is_none() {
            self.flush_sample()?;
        }
        Ok(self.out)
    }
}

fn write_line(out: &mut impl Write, widths: &[usize], cells: &[String]) -> io::Result<()> {
    let mut text = String::new();
    for (i, cell) in cells.iter().enumerate() {
        let pad = widths.get(i).copied().unwrap_or(0);
        text.push_str(&format!("{cell:<pad$}  "));
    }
    writeln!(out, "{}", text.trim_end())
}

/// One JSON document `{"<field>": [rows...], <summary fields>}`, written as rows arrive.
pub(crate) struct JsonList<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> JsonList<W> {
    pub(crate) fn start(mut out: W, field: &str) -> io::Result<Self> {
        write!(out, "{{{}:[", serde_json::to_string(field)?)?;
        Ok(Self { out, first: true })
    }

    pub(crate) fn item(&mut self, item: &impl Serialize) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, item)?;
        Ok(())
    }

    /// Closes the list and the document with the summary's fields (an object).
    pub(crate) fn finish(mut self, summary: serde_json::Value) -> io::Result<W> {
        self.out.write_all(b"]")?;
        if let serde_json::Value::Object(fields) = summary {
            for (k, v) in fields {
                write!(
                    self.out,
                    ",{}:{}",
                    serde_json::to_string(&k)?,
                    serde_json::to_string(&v)?
                )?;
            }
        }
        self.out.write_all(b"}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes `value` as one JSON document and a newline.
pub(crate) fn json_document(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A timestamp for scripts: RFC 3339, UTC, milliseconds.
pub(crate) fn rfc3339(t: &Timestamp) -> String {
    t.as_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn opt_rfc3339(t: &Option<Timestamp>) -> Option<String> {
    t.as_ref().map(rfc3339)
}

/// `-` for a missing value in a table.
pub(crate) fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_string())
}

pub(crate) fn ts_or_dash(v: &Option<Timestamp>) -> String {
    v.map(|t| t.to_string()).unwrap_or_else(|| "-".to_string())
}

/// Shortens `s` for a table cell (JSON output carries the whole text).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_table_aligns_the_first_page_and_prints_headers_when_empty() {
        let mut t = StreamTable::new(Vec::new(), &["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]).expect("row");
        let text = String::from_utf8(t.finish().expect("finish")).expect("utf8");
        assert_eq!(text, "A          LONGER\nwide cell  x\n");
        let empty = StreamTable::new(Vec::new(), &["A"])
            .finish()
            .expect("finish");
        assert_eq!(empty, b"A\n");
    }

    #[test]
    fn json_list_is_one_document() {
        let mut list = JsonList::start(Vec::new(), "rows").expect("start");
        list.item(&serde_json::json!({"a": 1})).expect("item");
        list.item(&serde_json::json!({"a": 2})).expect("item");
        let out = list
            .finish(serde_json::json!({"count": 2}))
            .expect("finish");
        let doc: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(doc["rows"][1]["a"], 2);
        assert_eq!(doc["count"], 2);
    }

    #[test]
    fn closed_pipe_is_found_in_a_chain() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe)).context("printing");
        assert!(is_closed_pipe(&e));
        assert!(!is_closed_pipe(&anyhow::anyhow!("other")));
    }
}

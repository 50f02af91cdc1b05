//! Plain text tables for a terminal: what `status`, `history`, `track list` and the
//! demo print. Cells are stored strings, many from ICE: control characters in them are
//! escaped (`crate::text::printable`), so a value cannot recolour the terminal or add
//! a row.

/// Prints left-aligned columns separated by two spaces.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", format_table(headers, rows));
}

pub(crate) fn format_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| crate::text::printable(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths.get(i).copied().unwrap_or(0);
            text.push_str(&format!("{cell:<pad$}  "));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_cells_are_escaped() {
        let out = format_table(
            &["STATUS", "ERROR"],
            &[vec![
                "\u{1b}[2J\u{1b}[31mProducing".into(),
                "a\nforged row\r".into(),
            ]],
        );
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
        assert_eq!(out.lines().count(), 2, "{out:?}");
        assert!(
            out.contains("\\u{1b}[31mProducing") && out.contains("a\\nforged row\\r"),
            "{out:?}"
        );
    }
}

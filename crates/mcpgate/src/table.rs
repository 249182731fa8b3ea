//! The aligned tables of the `list` subcommands (keys, clients, users,
//! resource servers, signing keys): a header row, then one row per record,
//! columns two spaces apart.

/// Renders `rows` under `header`, each column as wide as its widest cell,
/// without trailing spaces; one line per row.
pub(crate) fn render<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> String {
    let header = header.map(str::to_owned);
    let mut widths = [0usize; N];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Prints `rows` as a table on stdout, or, when there are none, `empty` (what
/// to do to add one) on stderr, so that a script reading stdout gets nothing.
pub(crate) fn print<const N: usize>(header: [&str; N], rows: Vec<[String; N]>, empty: &str) {
    if rows.is_empty() {
        eprintln!("{empty}");
    } else {
        print!("{}", render(header, rows));
    }
}

/// A cell's text, or `-` for an empty one.
pub(crate) fn or_dash(s: String) -> String {
    if s.is_empty() { "-".to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let t = super::render(
            ["A", "LONGER"],
            vec![
                ["wide cell".into(), "x".into()],
                ["b".into(), String::new()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\nb\n");
    }
}

//! Plain-text tables for the CLI.

/// Prints rows as left-aligned columns; the last column is not padded and may span lines.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols.saturating_sub(1)) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 < cols {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            } else {
                let indent = " ".repeat(widths.iter().take(cols - 1).map(|w| w + 2).sum());
                s.push_str(&c.replace('\n', &format!("\n{indent}")));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

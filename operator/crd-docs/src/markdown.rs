//! Markdown table cells: text that never breaks a GitHub-flavoured table.

/// `s` as inline code, fenced so that a backtick inside cannot end it, pipes escaped.
pub fn code(s: &str) -> String {
    let fenced = if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    };
    fenced.replace('|', "\\|")
}

/// Prose for a cell: pipes escaped, and `<` outside code spans written as `&lt;` so that
/// `<store>/<namespace>` is shown, not swallowed as an HTML tag.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    for c in s.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A table: the header, then one line per row (cells already escaped).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_never_split_a_cell_and_angle_brackets_stay_visible() {
        assert_eq!(code("a || b"), r"`a \|\| b`");
        assert_eq!(code("x`y"), "`` x`y ``");
        assert_eq!(
            text("under <store>/`<ns>` | more"),
            r"under &lt;store>/`<ns>` \| more"
        );
    }
}

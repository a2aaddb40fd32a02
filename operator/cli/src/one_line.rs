//! Errors as one line for a terminal.

/// The error and its causes joined by `: `, a cause left out when the message before it
/// already says it (kube's errors repeat their source).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain().map(ToString::to_string) {
        if !parts.last().is_some_and(|last| last.contains(&cause)) {
            parts.push(cause);
        }
    }
    parts.join(": ")
}

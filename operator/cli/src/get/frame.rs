//! What a live view prints each time it redraws. On a terminal the table is redrawn in
//! place under a header with the time of the last change. Piped (a demo script, a log), a
//! new table is printed only when its contents changed, after a `--- <time>` line, so the
//! output reads as a history. `-o json` prints one line per change.

use super::summary::{List, Summary};
use super::{Output, Scope, View, table};
use jiff::Timestamp;
use std::io::Write as _;

/// Cursor to the top left, then clear the screen: the next table replaces the last.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The frames of one live view: remembers what was printed last.
pub struct Frames {
    tty: bool,
    last: Option<Vec<Summary>>,
    changed: Option<Timestamp>,
}

impl Frames {
    /// `tty`: stdout is a terminal.
    pub fn new(tty: bool) -> Frames {
        Frames {
            tty,
            last: None,
            changed: None,
        }
    }

    /// The text to print for the objects as they are at `now`; `None` when nothing is to be
    /// printed (piped, and nothing changed). Ages count as content only on a terminal:
    /// piped, an older AGE alone is no reason for a new table.
    pub fn next(&mut self, view: &View, summaries: Vec<Summary>, now: Timestamp) -> Option<String> {
        let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let changed = self.last.as_ref() != Some(&summaries);
        if changed {
            self.changed = Some(now);
        }
        let text = match view.output {
            Output::Json => changed.then(|| {
                let list = List {
                    time: Some(now),
                    items: &summaries,
                };
                let line = serde_json::to_string(&list).expect("summaries serialise");
                format!("{line}\n")
            }),
            Output::Table | Output::Wide if self.tty => {
                let since = self.changed.unwrap_or(now);
                let local = since.to_zoned(jiff::tz::TimeZone::system());
                let place = match &view.scope {
                    Scope::Namespace(ns) => format!("namespace {ns}"),
                    Scope::All => "all namespaces".into(),
                };
                Some(format!(
                    "{CLEAR}ciclo get · {place} · last change {} · Ctrl-C to quit\n\n{}",
                    local.strftime("%H:%M:%S"),
                    table::render(view, &summaries, now)
                ))
            }
            Output::Table | Output::Wide => changed.then(|| {
                let gap = if self.last.is_some() { "\n" } else { "" };
                format!("{gap}--- {now}\n{}", table::render(view, &summaries, now))
            }),
        };
        self.last = Some(summaries);
        text
    }
}

/// Writes `text` to stdout at once; false when stdout is gone (the reader of a pipe quit),
/// which ends a watch quietly rather than with a panic.
pub fn write_stdout(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::Kind;
    use crate::get::fixtures;
    use crate::get::summary::{Summarize, sort};

    fn view(output: Output) -> View {
        View {
            kinds: vec![Kind::Dataset, Kind::ModelDeployment],
            scope: Scope::Namespace("ml".into()),
            output,
        }
    }

    fn objects() -> Vec<Summary> {
        let mut s: Vec<Summary> = fixtures::datasets()
            .iter()
            .map(Summarize::summarize)
            .chain(
                fixtures::model_deployments()
                    .iter()
                    .map(Summarize::summarize),
            )
            .collect();
        sort(&mut s);
        s
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    /// The objects after the canary of `iris` moved on to its third step.
    fn next_step() -> Vec<Summary> {
        let mut mds = fixtures::model_deployments();
        let s = mds[0].status.as_mut().unwrap();
        s.step_index = Some(2);
        s.canary_weight = Some(50);
        let mut all: Vec<Summary> = fixtures::datasets()
            .iter()
            .map(Summarize::summarize)
            .chain(mds.iter().map(Summarize::summarize))
            .collect();
        sort(&mut all);
        all
    }

    #[test]
    fn piped_a_table_is_printed_only_when_its_contents_changed() {
        let mut frames = Frames::new(false);
        let v = view(Output::Table);
        let first = frames
            .next(&v, objects(), at("2026-11-28T12:00:00.250Z"))
            .expect("the first table");
        assert!(
            first.starts_with("--- 2026-11-28T12:00:00Z\nDATASET "),
            "{first}"
        );
        assert!(first.contains("3 (25%, step 2/4)"));
        // Minutes later, the same objects: AGE alone changed, nothing is printed.
        assert_eq!(frames.next(&v, objects(), at("2026-11-28T12:05:00Z")), None);
        let second = frames
            .next(&v, next_step(), at("2026-11-28T12:06:00Z"))
            .expect("a new table after a change");
        assert!(
            second.starts_with("\n--- 2026-11-28T12:06:00Z\nDATASET "),
            "{second}"
        );
        assert!(second.contains("3 (50%, step 3/4)"), "{second}");
        assert!(!second.contains('\x1b'), "no escape codes in a pipe");
    }

    #[test]
    fn on_a_terminal_every_frame_redraws_in_place_with_the_time_of_the_last_change() {
        let mut frames = Frames::new(true);
        let v = view(Output::Table);
        let first = frames
            .next(&v, objects(), at("2026-11-28T12:00:00Z"))
            .unwrap();
        assert!(first.starts_with(CLEAR), "{first:?}");
        assert!(first.contains("ciclo get · namespace ml · last change "));
        let header = |frame: &str| frame.lines().next().unwrap().to_string();
        // A redraw without a change (to refresh the ages) keeps the time of the last change.
        let again = frames
            .next(&v, objects(), at("2026-11-28T12:07:00Z"))
            .unwrap();
        assert_eq!(header(&again), header(&first));
        assert!(again.starts_with(CLEAR));
        let changed = frames
            .next(&v, next_step(), at("2026-11-28T12:09:00Z"))
            .unwrap();
        assert_ne!(header(&changed), header(&first));
    }

    #[test]
    fn json_is_one_line_per_change() {
        let mut frames = Frames::new(false);
        let v = view(Output::Json);
        let line = frames
            .next(&v, objects(), at("2026-11-28T12:00:00Z"))
            .unwrap();
        assert_eq!(line.lines().count(), 1);
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["time"], "2026-11-28T12:00:00Z");
        assert_eq!(doc["items"].as_array().unwrap().len(), 5);
        assert_eq!(frames.next(&v, objects(), at("2026-11-28T12:01:00Z")), None);
        assert!(
            frames
                .next(&v, next_step(), at("2026-11-28T12:02:00Z"))
                .is_some()
        );
    }
}

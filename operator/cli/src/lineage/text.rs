//! The chain as text, the default output: a tree from the dataset version down to the
//! deployments, with aligned `key  value` details under each link and a sentence where a
//! link's object is gone or no longer records the entry.

use super::chain::{DatasetLink, Found, GateLink, Lineage, ModelLink, RunLink};
use ciclo_api::dataset::Verdict;
use ciclo_core::metrics::Direction;
use std::collections::BTreeMap;
// Writing to a String cannot fail: the `let _ = writeln!(…)` below drop an always-Ok result.
use std::fmt::Write as _;

/// The chain as an indented tree, one `key  value` detail per line under each link.
pub fn render_text(l: &Lineage) -> String {
    let mut out = String::new();
    write_dataset(&mut out, &l.dataset);
    write_run(&mut out, &l.run);
    write_model(&mut out, &l.model);
    let deployed = if l.deployed_by.is_empty() {
        "(none yet)".to_string()
    } else {
        l.deployed_by.join(", ")
    };
    node(&mut out, "      └─ ", &format!("deployed by  {deployed}"));

    for note in &l.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// The tree's root: the dataset version, with the Dataset's record of it when it has one.
fn write_dataset(out: &mut String, d: &DatasetLink) {
    node(
        out,
        "",
        &format!("dataset {}  version {}", d.name, d.version),
    );
    let mut details = Details::new("│  ");
    match (&d.found, &d.record) {
        (Found::Recorded, Some(v)) => {
            let verdict = match v.verdict {
                Verdict::Accepted => "Accepted".to_string(),
                Verdict::Rejected if v.reasons.is_empty() => "Rejected".to_string(),
                Verdict::Rejected => format!("Rejected: {}", v.reasons.join("; ")),
            };
            details.line("verdict", &verdict);
            details.line(
                "size",
                &format!(
                    "{}, {}, {}",
                    plural(v.rows, "row"),
                    plural(v.files, "file"),
                    human_bytes(v.bytes)
                ),
            );
            details.line("first seen", &v.created.to_string());
            if let Some(loc) = &v.location {
                details.line("stored", loc);
            }
            // Production data: the models that served it come before this one.
            if let Some(c) = &v.captured_from {
                let answered = match c.model_versions.as_slice() {
                    [] => String::new(),
                    [one] => format!(", answered by version {one}"),
                    versions => format!(", answered by versions {}", versions.join(", ")),
                };
                details.line(
                    "captured",
                    &format!(
                        "by ModelDeployment {}{answered} ({} of {} labelled)",
                        c.model_deployment,
                        plural(v.rows, "row"),
                        plural(c.captured_rows, "captured row"),
                    ),
                );
            }
        }
        (Found::Gone, _) => details.text(&format!(
            "(the Dataset {} is gone: only the version id is known)",
            d.name
        )),
        _ => details.text(&format!(
            "(version no longer in the Dataset {}'s history: only its id is known)",
            d.name
        )),
    }
    out.push_str(&details.out);
}

/// The run, with the TrainingRun's record of it when it has one, then what the ModelVersion
/// recorded of it (known even when the TrainingRun is gone).
fn write_run(out: &mut String, r: &RunLink) {
    node(
        out,
        "└─ ",
        &format!("run {}  id {}", r.training_run, r.run_id),
    );
    let mut details = Details::new("   │  ");
    match (&r.found, &r.record) {
        (Found::Recorded, Some(rec)) => {
            details.line("phase", rec.phase.as_str());
            if let Some(start) = rec.start_time {
                let end = rec
                    .completion_time
                    .map_or_else(|| "…".to_string(), |t| t.to_string());
                let took = rec
                    .completion_time
                    .and_then(|end| took(start, end))
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default();
                details.line("ran", &format!("{start} → {end}{took}"));
            }
            details.line("job", &rec.job);
            if let Some(f) = &rec.failure {
                details.line("failure", f);
            }
        }
        (Found::Gone, _) => details.text(&format!(
            "(the TrainingRun {} is gone: below is what the ModelVersion recorded)",
            r.training_run
        )),
        _ => details.text(&format!(
            "(run no longer in the TrainingRun {}'s history: below is what the ModelVersion recorded)",
            r.training_run
        )),
    }
    details.line("image", &r.image);
    if let Some(digest) = &r.image_digest {
        details.line("image id", digest);
    }
    match (&r.git_repository, &r.git_revision) {
        (Some(repo), Some(rev)) => details.line("git", &format!("{repo} @ {rev}")),
        (Some(one), None) | (None, Some(one)) => details.line("git", one),
        (None, None) => {}
    }
    if !r.params.is_empty() {
        details.line("params", &join(&r.params));
    }
    out.push_str(&details.out);
}

/// The model version: whether it is blessed and why, its artifact, metrics and gates.
fn write_model(out: &mut String, m: &ModelLink) {
    node(
        out,
        "   └─ ",
        &format!(
            "model {}  version {}  (ModelVersion {})",
            m.model, m.version, m.name
        ),
    );
    let mut details = Details::new("      │  ");
    let why = match (&m.blessed_reason, &m.blessed_message) {
        (Some(reason), Some(msg)) if !msg.is_empty() => format!(" ({reason}: {msg})"),
        (Some(reason), _) => format!(" ({reason})"),
        _ => String::new(),
    };
    details.line(
        "blessed",
        &format!("{}{why}", if m.blessed { "yes" } else { "no" }),
    );
    details.line("artifact", &m.artifact.uri);
    details.line("digest", &m.artifact.digest);
    if let Some(format) = &m.artifact.format {
        details.line("format", format);
    }
    if !m.metrics.is_empty() {
        details.line("metrics", &join(&m.metrics));
    }
    for (i, g) in m.gates.iter().enumerate() {
        let key = if i == 0 { "gates" } else { "" };
        let verdict = if g.verdict.passed { "passed" } else { "failed" };
        details.line(key, &format!("{verdict}  {}", gate_text(g)));
    }
    if let Some(registered) = &m.registered {
        details.line("registered", registered);
    }
    out.push_str(&details.out);
}

/// The verdict's own words; verdicts recorded before they had any are spelled out here.
fn gate_text(g: &GateLink) -> String {
    let v = &g.verdict;
    if !v.message.is_empty() {
        return v.message.clone();
    }
    let reach = match g.direction {
        Some(Direction::Maximize) => "≥",
        Some(Direction::Minimize) => "≤",
        None => "vs",
    };
    let rule = match (v.threshold, v.baseline_version) {
        (Some(t), Some(b)) => format!("{} {reach} {t} (from version {b})", v.metric),
        (Some(t), None) => format!("{} {reach} {t}", v.metric),
        (None, Some(b)) => format!("{} against version {b}", v.metric),
        (None, None) => v.metric.clone(),
    };
    match v.value {
        Some(value) => format!("{rule}: {value}"),
        None => format!("{rule}: not reported"),
    }
}

/// One line of the tree: a link, after the branch that hangs it under the one above.
fn node(out: &mut String, branch: &str, head: &str) {
    let _ = writeln!(out, "{branch}{head}");
}

/// Detail lines under a node, their values aligned.
struct Details {
    prefix: &'static str,
    out: String,
}

impl Details {
    /// Wide enough for the longest key, "first seen" / "registered".
    const KEY_WIDTH: usize = 10;

    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            out: String::new(),
        }
    }

    fn line(&mut self, key: &str, value: &str) {
        let _ = writeln!(
            self.out,
            "{}{key:<width$} {value}",
            self.prefix,
            width = Self::KEY_WIDTH
        );
    }

    fn text(&mut self, text: &str) {
        let _ = writeln!(self.out, "{}{text}", self.prefix);
    }
}

/// `key=value, …` in key order.
fn join<V: std::fmt::Display>(map: &BTreeMap<String, V>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 row`, `2 rows`.
fn plural(n: i64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// In binary units with one decimal (`4.2 KiB`); whole bytes below 1 KiB.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How long a run took, as `1h 2m 3s`; None when the end comes before the start.
fn took(start: jiff::Timestamp, end: jiff::Timestamp) -> Option<String> {
    let secs = end.as_second() - start.as_second();
    if secs < 0 {
        return None;
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    Some(match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::chain::chain;
    use crate::lineage::fixtures::{
        DATASET_VERSION, RUN_ID, dataset, dataset_version, model_version, recorded_dataset,
        recorded_run, run_record, training_run,
    };

    #[test]
    fn lineage_full_chain_links_dataset_version_run_and_model() {
        let l = chain(
            &model_version(),
            Some(&recorded_run()),
            Some(&recorded_dataset()),
        );
        assert_eq!(l.namespace.as_deref(), Some("ml"));
        assert_eq!(l.dataset.found, Found::Recorded);
        assert_eq!(l.dataset.record.as_ref().unwrap().rows, 150);
        assert_eq!(l.run.found, Found::Recorded);
        assert_eq!(
            l.run.record.as_ref().unwrap().job,
            format!("iris-train-run-{RUN_ID}")
        );
        assert_eq!(l.model.name, "iris-2");
        assert!(l.model.blessed);
        assert_eq!(
            l.model.gates[1].direction,
            Some(Direction::Minimize),
            "the direction comes from the gates the version was registered with"
        );
        assert!(l.deployed_by.is_empty());
        assert!(l.notes.is_empty());

        let expected = format!(
            "\
dataset iris  version {DATASET_VERSION}
│  verdict    Accepted
│  size       150 rows, 1 file, 4.2 KiB
│  first seen 2026-11-26T10:00:00Z
│  stored     s3://ciclo/ml/datasets/iris/{DATASET_VERSION}/
└─ run iris-train  id {RUN_ID}
   │  phase      Succeeded
   │  ran        2026-11-26T10:01:00Z → 2026-11-26T10:02:10Z (1m 10s)
   │  job        iris-train-run-{RUN_ID}
   │  image      ghcr.io/acme/iris-train:1.2
   │  image id   ghcr.io/acme/iris-train@sha256:5be1
   │  git        https://github.com/acme/iris @ 4d5e6f7
   │  params     max_depth=4, seed=7
   └─ model iris  version 2  (ModelVersion iris-2)
      │  blessed    yes (GatesPassed: 2 of 2 gates passed)
      │  artifact   s3://ciclo/ml/models/iris/2/model.json
      │  digest     blake3:7d9e41c0aa
      │  format     ciclo.dev/model/v1
      │  metrics    accuracy=0.95, loss=0.21
      │  gates      passed  accuracy = 0.95 ≥ 0.9
      │             passed  loss ≤ 0.3: 0.21
      │  registered 2026-11-26T10:02:15Z
      └─ deployed by  (none yet)
"
        );
        assert_eq!(render_text(&l), expected);
    }

    #[test]
    fn lineage_of_a_version_made_of_production_data_names_the_models_that_served_it() {
        let mut l = chain(&model_version(), None, Some(&recorded_dataset()));
        l.dataset.record.as_mut().unwrap().captured_from = Some(ciclo_api::dataset::CapturedFrom {
            model_deployment: "iris".into(),
            model_versions: vec!["2".into(), "1".into()],
            captured_rows: 400,
        });
        let text = render_text(&l);
        assert!(
            text.contains("│  captured   by ModelDeployment iris, answered by versions 2, 1 (150 rows of 400 captured rows labelled)\n"),
            "{text}"
        );
    }

    #[test]
    fn lineage_with_the_training_run_gone_keeps_what_the_model_version_recorded() {
        let l = chain(&model_version(), None, Some(&recorded_dataset()));
        assert_eq!(l.run.found, Found::Gone);
        assert_eq!(l.run.record, None);
        assert_eq!(l.run.image, "ghcr.io/acme/iris-train:1.2");
        assert_eq!(l.run.params["max_depth"], "4");
        let text = render_text(&l);
        assert!(text.contains(
            "   │  (the TrainingRun iris-train is gone: below is what the ModelVersion recorded)\n   │  image      ghcr.io/acme/iris-train:1.2\n"
        ), "{text}");
        assert!(!text.contains("phase"), "{text}");
        // The rest of the chain is still there.
        assert!(text.contains("│  verdict    Accepted\n"), "{text}");
        assert!(text.contains("   └─ model iris  version 2"), "{text}");
    }

    #[test]
    fn lineage_with_the_run_aged_out_of_history_says_so() {
        let tr = training_run(&run_record("0000000001", DATASET_VERSION, 3));
        let l = chain(&model_version(), Some(&tr), Some(&recorded_dataset()));
        assert_eq!(l.run.found, Found::NotInHistory);
        assert_eq!(l.run.record, None);
        assert!(l.notes.is_empty(), "another run's record is no evidence");
        let text = render_text(&l);
        assert!(text.contains(
            "   │  (run no longer in the TrainingRun iris-train's history: below is what the ModelVersion recorded)\n"
        ), "{text}");
        assert!(!text.contains("job "), "{text}");
    }

    #[test]
    fn lineage_with_the_dataset_version_aged_out_says_so() {
        let newer = dataset_version("ffffffffffffffffffffffffffffffff");
        let ds = dataset(&format!("[{newer}]"), &newer);
        let l = chain(&model_version(), Some(&recorded_run()), Some(&ds));
        assert_eq!(l.dataset.found, Found::NotInHistory);
        assert_eq!(l.dataset.record, None);
        assert_eq!(l.dataset.version, DATASET_VERSION);
        let text = render_text(&l);
        assert!(text.starts_with(&format!(
            "dataset iris  version {DATASET_VERSION}\n│  (version no longer in the Dataset iris's history: only its id is known)\n└─ run iris-train"
        )), "{text}");
    }

    #[test]
    fn lineage_with_the_dataset_gone_says_so() {
        let l = chain(&model_version(), Some(&recorded_run()), None);
        assert_eq!(l.dataset.found, Found::Gone);
        assert!(
            render_text(&l)
                .contains("│  (the Dataset iris is gone: only the version id is known)\n")
        );
    }

    #[test]
    fn lineage_of_an_unjudged_unblessed_version_with_deployments() {
        let mut mv = model_version();
        mv.status = Some(Default::default());
        mv.status.as_mut().unwrap().deployed_by = vec!["iris-prod".into(), "iris-canary".into()];
        let text = render_text(&chain(&mv, None, None));
        assert!(text.contains("      │  blessed    no\n"), "{text}");
        assert!(!text.contains("gates"), "{text}");
        assert!(
            text.ends_with("      └─ deployed by  iris-prod, iris-canary\n"),
            "{text}"
        );
    }

    #[test]
    fn lineage_sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4300), "4.2 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(plural(1, "row"), "1 row");
        assert_eq!(plural(0, "file"), "0 files");
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            took(at("2026-01-01T00:00:00Z"), at("2026-01-01T01:00:05Z")).as_deref(),
            Some("1h 0m 5s")
        );
        assert_eq!(
            took(at("2026-01-01T00:00:05Z"), at("2026-01-01T00:00:00Z")),
            None
        );
    }
}

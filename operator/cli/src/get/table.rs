//! The summaries as aligned text tables, one per kind, the kind's name heading the name
//! column (as `kubectl get ds,tr` prints a table per kind). Sized for a terminal of about
//! 120 columns; `-o wide` appends the why (rejections, failures, gates) and endpoints.

use super::summary::{
    DatasetDetails, Details, ModelDeploymentDetails, ModelVersionDetails, Summary,
    TrainingRunDetails, number,
};
use super::{Kind, Output, Scope, View};
use jiff::Timestamp;

/// Version ids (content digests) are shown by their first characters, as git shows commits.
const SHORT_ID: usize = 12;
/// The longest METRIC cell in the narrow table.
const MAX_METRIC: usize = 40;
const GAP: &str = "   ";
const NONE: &str = "-";

/// The tables of `summaries` (sorted as [`super::summary::sort`] sorts them), ages counted
/// up to `now`; a sentence when there are none.
pub fn render(view: &View, summaries: &[Summary], now: Timestamp) -> String {
    if summaries.is_empty() {
        let kinds: Vec<&str> = view.kinds.iter().map(|k| k.words()).collect();
        return format!("No {} {}.\n", or_list(&kinds), view.scope.words());
    }
    let wide = view.output == Output::Wide;
    let all = view.scope == Scope::All;
    let mut out = String::new();
    let mut rest = summaries;
    while let Some(first) = rest.first() {
        let kind = first.details.kind();
        let n = rest.iter().take_while(|s| s.details.kind() == kind).count();
        let (group, after) = rest.split_at(n);
        if !out.is_empty() {
            out.push('\n');
        }
        let mut rows = vec![headers(kind, wide, all)];
        rows.extend(group.iter().map(|s| row(s, wide, all, now)));
        out.push_str(&align(&rows));
        rest = after;
    }
    out
}

/// "a, b or c".
fn or_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn headers(kind: Kind, wide: bool, all: bool) -> Vec<String> {
    let (own, extra): (&[&str], &[&str]) = match kind {
        Kind::Dataset => (&["LATEST", "ROWS", "VERDICT"], &["NEWEST", "CHECK", "WHY"]),
        Kind::TrainingRun => (&["PHASE", "RUNS", "DATASET", "MODEL"], &["RUN", "WHY"]),
        Kind::ModelVersion => (
            &["MODEL", "BLESSED", "METRIC", "DATASET"],
            &["GATES", "DEPLOYED BY"],
        ),
        Kind::ModelDeployment => (
            &["MODEL", "SERVING", "PHASE", "CANARY"],
            &["SELECTS", "ENDPOINT", "LAST ROLLOUT"],
        ),
    };
    let name = kind.name().to_uppercase();
    let mut h: Vec<&str> = Vec::new();
    if all {
        h.push("NAMESPACE");
    }
    h.extend([name.as_str(), "READY", "REASON"]);
    h.extend(own);
    h.push("AGE");
    if wide {
        h.extend(extra);
    }
    h.into_iter().map(String::from).collect()
}

fn row(s: &Summary, wide: bool, all: bool, now: Timestamp) -> Vec<String> {
    let (own, extra) = match &s.details {
        Details::Dataset(d) => dataset(d),
        Details::TrainingRun(d) => training_run(d),
        Details::ModelVersion(d) => model_version(d, wide),
        Details::ModelDeployment(d) => model_deployment(d),
    };
    let mut r = Vec::new();
    if all {
        r.push(s.namespace.clone());
    }
    r.extend([
        s.name.clone(),
        s.ready.status.clone(),
        or_none(&s.ready.reason),
    ]);
    r.extend(own);
    r.push(s.created.map_or_else(|| NONE.into(), |c| age(c, now)));
    if wide {
        r.extend(extra);
    }
    r
}

/// An API enum as the API spells it (as `kubectl get -o yaml` shows it), not as Rust's `Debug`
/// would print it.
fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => NONE.into(),
    }
}

/// (the kind's columns, its wide columns)
type Cells = (Vec<String>, Vec<String>);

fn dataset(d: &DatasetDetails) -> Cells {
    let why = if !d.reasons.is_empty() {
        d.reasons.join("; ")
    } else if d.last_check == Some(ciclo_api::dataset::Outcome::Failed) {
        d.last_check_message.clone()
    } else {
        String::new()
    };
    (
        vec![
            short(d.latest.as_deref()),
            d.rows.map_or_else(|| NONE.into(), |r| r.to_string()),
            d.verdict.as_ref().map_or_else(|| NONE.into(), word),
        ],
        vec![
            short(d.newest.as_deref()),
            d.last_check.as_ref().map_or_else(|| NONE.into(), word),
            or_none(&why),
        ],
    )
}

fn training_run(d: &TrainingRunDetails) -> Cells {
    (
        vec![
            d.phase.clone().unwrap_or_else(|| NONE.into()),
            d.runs.to_string(),
            at_version(&d.dataset, d.dataset_version.as_deref()),
            match d.last_model_version {
                Some(n) => format!("{}:{n}", d.model),
                None => d.model.clone(),
            },
        ],
        vec![
            d.run.clone().unwrap_or_else(|| NONE.into()),
            d.failure.clone().unwrap_or_else(|| NONE.into()),
        ],
    )
}

fn model_version(d: &ModelVersionDetails, wide: bool) -> Cells {
    let blessed = match (d.blessed.observed, d.blessed.status.as_str()) {
        (false, _) => NONE,
        (true, "True") => "yes",
        (true, _) if d.blessed.reason == "WaitingForBaseline" => "waiting",
        (true, _) => "no",
    };
    let metrics: Vec<String> = d
        .metrics
        .iter()
        .map(|m| format!("{}={}", m.name, number(m.value)))
        .collect();
    let metrics = metrics.join(", ");
    (
        vec![
            format!("{}:{}", d.model, d.version),
            blessed.into(),
            or_none(&if wide {
                metrics
            } else {
                truncate(&metrics, MAX_METRIC)
            }),
            at_version(&d.dataset, Some(&d.dataset_version)),
        ],
        vec![
            or_none(&d.gates.join("; ")),
            or_none(&d.deployed_by.join(",")),
        ],
    )
}

fn model_deployment(d: &ModelDeploymentDetails) -> Cells {
    let canary = match d.canary {
        None => NONE.into(),
        Some(v) => {
            let mut how = Vec::new();
            if let Some(w) = d.weight {
                how.push(format!("{w}%"));
            }
            if let Some(step) = d.step
                && d.steps > 0
            {
                how.push(format!("step {step}/{}", d.steps));
            }
            if how.is_empty() {
                v.to_string()
            } else {
                format!("{v} ({})", how.join(", "))
            }
        }
    };
    let last = d.last_rollout.as_ref().map(|r| {
        if r.reason.is_empty() {
            format!("{} {}", r.version, r.result)
        } else {
            format!("{} {}: {}", r.version, r.result, r.reason)
        }
    });
    (
        vec![
            d.model.clone(),
            d.serving.map_or_else(|| NONE.into(), |v| v.to_string()),
            d.phase.as_ref().map_or_else(|| NONE.into(), word),
            canary,
        ],
        vec![
            d.selects.clone(),
            d.endpoint.clone().unwrap_or_else(|| NONE.into()),
            last.unwrap_or_else(|| NONE.into()),
        ],
    )
}

/// `iris@3f2a9c0e5b7d`: a dataset at a version.
fn at_version(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name}@{}", short(Some(v))),
        None => name.into(),
    }
}

fn short(id: Option<&str>) -> String {
    id.map_or_else(|| NONE.into(), |id| id.chars().take(SHORT_ID).collect())
}

fn or_none(s: &str) -> String {
    if s.is_empty() { NONE.into() } else { s.into() }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.into()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// How long ago, as kubectl's AGE: `45s`, `12m`, `5h`, `3d`.
pub fn age(created: Timestamp, now: Timestamp) -> String {
    let secs = now.as_second().saturating_sub(created.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The rows as columns padded to their widest cell, three spaces apart.
fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (cell, width) in r.iter().zip(&widths) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            line.push_str(GAP);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::fixtures::{self, NOW};
    use crate::get::summary::{Summarize, sort};

    fn view(kinds: &[Kind], output: Output) -> View {
        View {
            kinds: kinds.to_vec(),
            scope: Scope::Namespace("ml".into()),
            output,
        }
    }

    /// The tables of these objects, as `ciclo get` prints them at [`NOW`].
    fn table<K: Summarize>(objects: &[K], output: Output) -> String {
        let mut summaries: Vec<Summary> = objects.iter().map(Summarize::summarize).collect();
        sort(&mut summaries);
        let kinds: Vec<Kind> = summaries.iter().map(|s| s.details.kind()).collect();
        render(&view(&kinds, output), &summaries, NOW.parse().unwrap())
    }

    /// The table's cells: columns are three or more spaces apart, and no cell holds two
    /// spaces in a row.
    fn cells(table: &str) -> Vec<Vec<String>> {
        table
            .lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect()
            })
            .collect()
    }

    /// The cell of `column` in the row named `name`.
    fn cell(table: &str, name: &str, column: &str) -> String {
        let rows = cells(table);
        let c = rows[0]
            .iter()
            .position(|h| h == column)
            .unwrap_or_else(|| panic!("no column {column} in\n{table}"));
        let row = rows
            .iter()
            .find(|r| r.iter().any(|x| x == name))
            .unwrap_or_else(|| panic!("no row {name} in\n{table}"));
        row[c].clone()
    }

    #[test]
    fn datasets_show_the_latest_accepted_version_and_the_newest_verdict() {
        let t = table(&fixtures::datasets(), Output::Table);
        assert_eq!(
            cells(&t)[0],
            [
                "DATASET", "READY", "REASON", "LATEST", "ROWS", "VERDICT", "AGE"
            ]
        );
        let rows = cells(&t);
        let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap().clone();
        assert_eq!(
            row("churn"),
            [
                "churn",
                "True",
                "VersionAccepted",
                "4b8e2f6a1c3d",
                "9800",
                "Rejected",
                "2d"
            ]
        );
        assert_eq!(
            row("iris"),
            [
                "iris",
                "True",
                "VersionAccepted",
                "3f2a9c0e5b7d",
                "150",
                "Accepted",
                "45m"
            ]
        );
    }

    #[test]
    fn a_rejected_dataset_version_says_why_in_wide_output() {
        let t = table(&fixtures::datasets(), Output::Wide);
        assert_eq!(cell(&t, "churn", "NEWEST"), "9d0c7e13b5a2");
        assert_eq!(cell(&t, "churn", "CHECK"), "Rejected");
        assert_eq!(
            cell(&t, "churn", "WHY"),
            "column tenure: 12 values below the minimum 0; column plan: value \"trial\" is not allowed"
        );
        assert_eq!(cell(&t, "iris", "WHY"), "-");
    }

    #[test]
    fn a_condition_for_an_older_generation_is_not_shown_as_ready() {
        let t = table(&fixtures::datasets(), Output::Table);
        // `edited` says Ready=True for generation 2, but its spec is at generation 3.
        assert_eq!(cell(&t, "edited", "READY"), "Unknown");
        assert_eq!(cell(&t, "edited", "REASON"), "NotObserved");
        // Its last accepted version is still a fact worth showing.
        assert_eq!(cell(&t, "edited", "LATEST"), "3f2a9c0e5b7d");
    }

    #[test]
    fn training_runs_show_the_run_in_progress_or_the_last_outcome() {
        let t = table(&fixtures::training_runs(), Output::Wide);
        assert_eq!(cell(&t, "iris-train", "READY"), "False");
        assert_eq!(cell(&t, "iris-train", "REASON"), "Training");
        assert_eq!(cell(&t, "iris-train", "PHASE"), "Running");
        assert_eq!(cell(&t, "iris-train", "RUNS"), "2");
        assert_eq!(cell(&t, "iris-train", "DATASET"), "iris@7c41d09e2b6f");
        assert_eq!(cell(&t, "iris-train", "MODEL"), "iris:2");
        assert_eq!(cell(&t, "iris-train", "RUN"), "a41f03c2d9");

        assert_eq!(cell(&t, "churn-train", "READY"), "True");
        assert_eq!(cell(&t, "churn-train", "REASON"), "RunSucceeded");
        assert_eq!(cell(&t, "churn-train", "PHASE"), "Succeeded");
        assert_eq!(cell(&t, "churn-train", "RUNS"), "2");
        assert_eq!(cell(&t, "churn-train", "MODEL"), "churn:4");
        assert_eq!(cell(&t, "churn-train", "WHY"), "-");

        assert_eq!(cell(&t, "fraud-train", "READY"), "False");
        assert_eq!(cell(&t, "fraud-train", "REASON"), "RunFailed");
        assert_eq!(cell(&t, "fraud-train", "PHASE"), "Failed");
        assert_eq!(cell(&t, "fraud-train", "MODEL"), "fraud");
        assert_eq!(
            cell(&t, "fraud-train", "WHY"),
            "BackoffLimitExceeded: Job has reached the specified backoff limit"
        );
    }

    #[test]
    fn model_versions_show_blessing_the_deciding_metric_and_the_data() {
        let t = table(&fixtures::model_versions(), Output::Table);
        assert_eq!(
            cells(&t)[0],
            [
                "MODELVERSION",
                "READY",
                "REASON",
                "MODEL",
                "BLESSED",
                "METRIC",
                "DATASET",
                "AGE"
            ]
        );
        // Sorted by number: iris-10 after iris-9.
        let rows = cells(&t);
        let names: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ["iris-2", "iris-3", "iris-10"]);
        assert_eq!(cell(&t, "iris-2", "BLESSED"), "yes");
        assert_eq!(cell(&t, "iris-2", "METRIC"), "accuracy=0.95");
        assert_eq!(cell(&t, "iris-2", "DATASET"), "iris@3f2a9c0e5b7d");
        assert_eq!(cell(&t, "iris-3", "BLESSED"), "no");
        assert_eq!(cell(&t, "iris-3", "METRIC"), "accuracy=0.8733");
        assert_eq!(cell(&t, "iris-10", "BLESSED"), "waiting");
        // Registered without a primary metric: the gated one decides.
        assert_eq!(cell(&t, "iris-10", "METRIC"), "f1=0.91");
    }

    #[test]
    fn an_unblessed_model_version_says_which_gate_failed_in_wide_output() {
        let t = table(&fixtures::model_versions(), Output::Wide);
        assert_eq!(cell(&t, "iris-3", "GATES"), "accuracy = 0.8733 < 0.9");
        assert_eq!(
            cell(&t, "iris-2", "GATES"),
            "accuracy = 0.95 ≥ 0.9; loss = 0.21 (passed)"
        );
        assert_eq!(cell(&t, "iris-2", "DEPLOYED BY"), "iris");
    }

    #[test]
    fn model_deployments_show_what_serves_and_the_canary_in_flight() {
        let t = table(&fixtures::model_deployments(), Output::Wide);
        assert_eq!(cell(&t, "iris", "READY"), "False");
        assert_eq!(cell(&t, "iris", "REASON"), "Canary");
        assert_eq!(cell(&t, "iris", "SERVING"), "2");
        assert_eq!(cell(&t, "iris", "PHASE"), "Progressing");
        assert_eq!(cell(&t, "iris", "CANARY"), "3 (25%, step 2/4)");
        assert_eq!(cell(&t, "churn", "READY"), "True");
        assert_eq!(cell(&t, "churn", "REASON"), "Serving");
        assert_eq!(cell(&t, "churn", "SERVING"), "4");
        assert_eq!(cell(&t, "churn", "PHASE"), "Promoted");
        assert_eq!(cell(&t, "churn", "CANARY"), "-");
        assert_eq!(cell(&t, "churn", "ENDPOINT"), "http://churn.ml.svc:8080");
        assert_eq!(
            cell(&t, "churn", "LAST ROLLOUT"),
            "4 Promoted: all steps passed"
        );
        assert_eq!(cell(&t, "churn", "SELECTS"), "latest-blessed");
    }

    #[test]
    fn every_kind_gets_its_own_table_in_the_order_of_the_cycle() {
        let mut summaries: Vec<Summary> = fixtures::model_deployments()
            .iter()
            .map(Summarize::summarize)
            .chain(fixtures::datasets().iter().map(Summarize::summarize))
            .collect();
        sort(&mut summaries);
        let t = render(
            &view(&Kind::ALL, Output::Table),
            &summaries,
            NOW.parse().unwrap(),
        );
        let headers: Vec<&str> = t
            .lines()
            .filter(|l| l.contains("READY"))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(headers, ["DATASET", "MODELDEPLOYMENT"]);
        assert!(
            t.contains("\n\nMODELDEPLOYMENT"),
            "a blank line between tables:\n{t}"
        );
    }

    #[test]
    fn all_namespaces_adds_a_namespace_column() {
        let mut summaries: Vec<Summary> = fixtures::datasets()
            .iter()
            .map(Summarize::summarize)
            .collect();
        sort(&mut summaries);
        let mut v = view(&[Kind::Dataset], Output::Table);
        v.scope = Scope::All;
        let t = render(&v, &summaries, NOW.parse().unwrap());
        assert_eq!(cells(&t)[0][..2], ["NAMESPACE", "DATASET"]);
        assert_eq!(cells(&t)[1][..2], ["ml", "churn"]);
    }

    #[test]
    fn nothing_to_show_is_said_in_a_sentence() {
        let t = render(&view(&Kind::ALL, Output::Table), &[], NOW.parse().unwrap());
        assert_eq!(
            t,
            "No datasets, training runs, model versions or model deployments in namespace ml.\n"
        );
        let t = render(
            &view(&[Kind::ModelVersion], Output::Wide),
            &[],
            NOW.parse().unwrap(),
        );
        assert_eq!(t, "No model versions in namespace ml.\n");
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        for (created, expected) in [
            ("2026-11-28T11:59:15Z", "45s"),
            ("2026-11-28T11:58:01Z", "119s"),
            ("2026-11-28T11:48:00Z", "12m"),
            ("2026-11-28T07:00:00Z", "5h"),
            ("2026-11-25T12:00:00Z", "3d"),
            ("2026-11-28T12:00:05Z", "0s"),
        ] {
            assert_eq!(age(created.parse().unwrap(), now), expected, "{created}");
        }
    }

    #[test]
    fn metric_values_are_short() {
        assert_eq!(number(0.95), "0.95");
        assert_eq!(number(0.873333), "0.8733");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(-0.00001), "0");
    }
}

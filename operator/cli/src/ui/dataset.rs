//! A dataset's page (`/datasets/{namespace}/{dataset}`): its versions from its status
//! (accepted, or rejected with the reasons), the profile of one of them (`?version=`, by
//! default the latest accepted: per column its nulls, distinct values, range and a histogram
//! or its most frequent values) from the artifact store, and how far each column drifted
//! from a second version (`?base=`).

use super::chart::{self, Bar};
use super::short;
use ciclo_api::dataset::{DatasetVersion, Verdict};
use ciclo_api::{Dataset, conditions};
use ciclo_core::expectations::{DriftLimit, DriftMeasure};
use ciclo_profile::ColumnProfile;
use ciclo_profile::Profile;
use jiff::Timestamp;
use maud::{Markup, html};
use std::sync::Arc;

/// The versions the page was asked for, by id or a prefix of it (as the page shows them).
#[derive(serde::Deserialize, Default, Debug)]
pub struct Choice {
    pub version: Option<String>,
    pub base: Option<String>,
}

/// A profile as the page got it: read, unreadable (why), or the version has no location.
pub type Read = Option<Result<Arc<Profile>, String>>;

/// What the page shows of one dataset.
pub struct Page<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub dataset: &'a Dataset,
    /// The version whose profile shows, and its profile.
    pub shown: Option<(&'a DatasetVersion, Read)>,
    /// The version the drift is measured from, and its profile.
    pub base: Option<(&'a DatasetVersion, Read)>,
}

/// Every version the status records, newest first: `versions`, and `latest` if the history
/// no longer holds it.
pub fn versions(dataset: &Dataset) -> Vec<&DatasetVersion> {
    let Some(status) = &dataset.status else {
        return Vec::new();
    };
    let mut all: Vec<&DatasetVersion> = status.versions.iter().collect();
    if let Some(latest) = &status.latest
        && !all.iter().any(|v| v.id == latest.id)
    {
        all.push(latest);
    }
    all.sort_by_key(|v| std::cmp::Reverse(v.created));
    all
}

/// The version `choice` names (an id or a prefix of one), else the latest accepted, else the
/// newest.
pub fn pick<'a>(
    all: &[&'a DatasetVersion],
    dataset: &Dataset,
    choice: Option<&str>,
) -> Option<&'a DatasetVersion> {
    match choice.filter(|c| !c.is_empty()) {
        Some(c) => all.iter().copied().find(|v| v.id.starts_with(c)),
        None => {
            let latest = dataset.status.as_ref().and_then(|s| s.latest.as_ref());
            latest
                .and_then(|l| all.iter().copied().find(|v| v.id == l.id))
                .or_else(|| all.first().copied())
        }
    }
}

/// The page's `<main>`.
pub fn render(page: &Page, now: Timestamp) -> Markup {
    let ds = page.dataset;
    let all = versions(ds);
    let ready = ds
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::READY));
    let source = ds
        .spec
        .source
        .uri
        .clone()
        .or_else(|| {
            ds.spec
                .source
                .capture
                .as_ref()
                .map(|c| format!("the capture of ModelDeployment {}", c.model_deployment))
        })
        .unwrap_or_default();
    let shown_id = page.shown.as_ref().map(|(v, _)| v.id.as_str());
    let base_id = page.base.as_ref().map(|(v, _)| v.id.as_str());
    html! {
        h1 { "Dataset " (page.name) }
        p.note { "namespace " (page.namespace) " · source " (source) }
        @if let Some(c) = ready {
            p { span class=(c.status) { "Ready " (c.status) } " " (c.reason) ": " span.why { (c.message) } }
        }
        section #versions {
            h2 { "Versions" }
            @if all.is_empty() {
                p.note { "No version checked yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Version" } th { "Checked" } th { "Verdict" } th { "Rows" } th { "Files" } th { "Bytes" } th { "Compare" }
                    } }
                    tbody {
                        @for v in &all {
                            @let class = if Some(v.id.as_str()) == shown_id { "shown" } else if Some(v.id.as_str()) == base_id { "base" } else { "" };
                            tr data-version=(v.id) class=(class) {
                                td { a href=(link(page, Some(&v.id), base_id)) { (short(&v.id)) } }
                                td { (crate::get::table::age(v.created, now)) " ago" }
                                td {
                                    @match v.verdict {
                                        Verdict::Accepted => span.True { "Accepted" },
                                        Verdict::Rejected => span.False { "Rejected" },
                                    }
                                    @for r in &v.reasons { div.why { (r) } }
                                }
                                td { (v.rows) } td { (v.files) } td { (v.bytes) }
                                td {
                                    @if let Some(shown) = shown_id && shown != v.id {
                                        a href=(link(page, Some(shown), Some(&v.id))) { "drift from this" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some((base, base_read)) = &page.base && let Some((shown, read)) = &page.shown {
            (drift_section(ds, base, base_read, shown, read))
        }
        @if let Some((shown, read)) = &page.shown {
            section #profile {
                h2 { "Profile of version " (short(&shown.id)) }
                (profile(read))
            }
        }
    }
}

/// The page's own address with `version` and `base` chosen.
fn link(page: &Page, version: Option<&str>, base: Option<&str>) -> String {
    let mut query: Vec<String> = Vec::new();
    if let Some(v) = version {
        query.push(format!("version={}", short(v)));
    }
    if let Some(b) = base {
        query.push(format!("base={}", short(b)));
    }
    format!(
        "/datasets/{}/{}{}{}",
        page.namespace,
        page.name,
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    )
}

fn profile(read: &Read) -> Markup {
    match read {
        None => html! { p.note { "This version's check recorded no location for its profile." } },
        Some(Err(why)) => html! {
            p.unreadable {
                "The profile cannot be read: " (why) ". It is read from the artifact store with "
                "the settings a ciclo workload gets (CICLO_ARTIFACTS_AWS_ENDPOINT, "
                "CICLO_ARTIFACTS_AWS_ACCESS_KEY_ID, … in the environment of ciclo ui)."
            }
        },
        Some(Ok(p)) => html! {
            p.note { (p.rows) " rows, " (p.columns.len()) " columns" }
            @for c in &p.columns { (column(c, p.rows)) }
        },
    }
}

/// One column: its figures, then its histogram (numbers) or most frequent values (text,
/// booleans).
fn column(c: &ColumnProfile, rows: u64) -> Markup {
    let number = |v: Option<f64>| {
        v.map(crate::get::summary::number)
            .unwrap_or_else(|| "–".into())
    };
    let share = if rows == 0 {
        0.0
    } else {
        c.nulls as f64 / rows as f64 * 100.0
    };
    html! {
        div.column data-column=(c.name) {
            h3 { (c.name) " " span.note { (format!("{:?}", c.type_).to_lowercase()) } }
            p.figures {
                "nulls " (c.nulls) " (" (format!("{share:.1}")) " %) · distinct " (c.distinct)
                @if c.min.is_some() {
                    " · min " (number(c.min)) " · max " (number(c.max)) " · mean " (number(c.mean)) " · std " (number(c.std))
                }
            }
            @if let Some(h) = &c.histogram {
                (chart::bars(&format!("{}: values per bin", c.name), &h.counts.iter().enumerate().map(|(i, &n)| {
                    let (lo, hi) = (h.edges.get(i).copied().unwrap_or(f64::NAN), h.edges.get(i + 1).copied().unwrap_or(f64::NAN));
                    Bar {
                        value: n as f64,
                        label: crate::get::summary::number(lo),
                        title: format!("[{}, {}{}: {n}", crate::get::summary::number(lo), crate::get::summary::number(hi), if i + 2 == h.edges.len() { "]" } else { ")" }),
                    }
                }).collect::<Vec<_>>()))
            } @else if !c.top_values.is_empty() {
                (chart::bars(&format!("{}: most frequent values", c.name), &c.top_values.iter().take(20).map(|v| Bar {
                    value: v.count as f64,
                    label: v.value.clone(),
                    title: format!("{}: {}", v.value, v.count),
                }).collect::<Vec<_>>()))
            }
        }
    }
}

/// The drift of every column from `base` to `shown`, by the dataset's own limit (or PSI,
/// flagged above 0.2, the usual "significant shift", when it declares none).
fn drift_section(
    ds: &Dataset,
    base: &DatasetVersion,
    base_read: &Read,
    shown: &DatasetVersion,
    read: &Read,
) -> Markup {
    let limit = ds.spec.drift.clone().unwrap_or(DriftLimit {
        measure: DriftMeasure::Psi,
        max_distance: 0.2,
        columns: Vec::new(),
    });
    html! {
        section #drift {
            h2 { "Drift of " (short(&shown.id)) " from " (short(&base.id)) }
            @match (base_read, read) {
                (Some(Ok(b)), Some(Ok(s))) => {
                    @let drifts = ciclo_profile::drift(&limit, b, s);
                    p.note {
                        (measure_name(limit.measure)) " per column, flagged above " (crate::get::summary::number(limit.max_distance))
                        @if ds.spec.drift.is_none() { " (the Dataset declares no drift limit)" }
                    }
                    table {
                        thead { tr { th { "Column" } th { "Distance" } th { "" } } }
                        tbody {
                            @for d in &drifts {
                                tr data-column=(d.column) {
                                    td { (d.column) }
                                    td { (crate::get::summary::number(d.distance)) }
                                    td class=(if d.exceeded { "False" } else { "True" }) { (if d.exceeded { "above the limit" } else { "within" }) }
                                }
                            }
                        }
                    }
                }
                _ => p.note { "Both versions' profiles are needed: see below for why one cannot be read." },
            }
        }
    }
}

fn measure_name(m: DriftMeasure) -> &'static str {
    match m {
        DriftMeasure::Psi => "PSI",
        DriftMeasure::JensenShannon => "Jensen-Shannon distance",
        DriftMeasure::LInfinity => "L-infinity distance",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::fixtures;
    use ciclo_core::expectations::ColumnType;
    use ciclo_profile::Histogram;

    fn now() -> Timestamp {
        fixtures::NOW.parse().unwrap()
    }

    /// The page of `ds` in namespace ml, showing `shown` and measuring drift from `base`.
    fn html<'a>(
        ds: &'a Dataset,
        shown: Option<(&'a DatasetVersion, Read)>,
        base: Option<(&'a DatasetVersion, Read)>,
    ) -> String {
        let name = ds.metadata.name.as_deref().unwrap();
        let page = Page {
            namespace: "ml",
            name,
            dataset: ds,
            shown,
            base,
        };
        render(&page, now()).into_string()
    }

    fn dataset(name: &str) -> Dataset {
        fixtures::datasets()
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    fn numbers(name: &str, counts: Vec<u64>) -> ColumnProfile {
        let edges = (0..=counts.len()).map(|i| i as f64 * 10.0).collect();
        ColumnProfile {
            name: name.into(),
            type_: ColumnType::Float,
            count: counts.iter().sum(),
            nulls: 1,
            min: Some(0.0),
            max: Some(counts.len() as f64 * 10.0),
            mean: Some(5.0),
            std: Some(1.0),
            distinct: 7,
            quantiles: Vec::new(),
            histogram: Some(Histogram { edges, counts }),
            top_values: Vec::new(),
            kll_sketch: None,
        }
    }

    #[test]
    fn every_version_is_listed_with_its_verdict_and_reasons() {
        let ds = dataset("churn");
        let all = versions(&ds);
        let html = html(&ds, pick(&all, &ds, None).map(|v| (v, None)), None);
        assert_eq!(
            html.matches("<tr data-version=").count(),
            all.len(),
            "{html}"
        );
        assert!(all.len() >= 2);
        for v in &all {
            assert!(html.contains(&short(&v.id)), "{}", v.id);
            for r in &v.reasons {
                assert!(html.contains(&r.replace('"', "&quot;")), "reason {r}");
            }
        }
        assert!(html.contains("Rejected") && html.contains("Accepted"));
        // The latest accepted version is the one shown by default.
        let latest = &ds.status.as_ref().unwrap().latest.as_ref().unwrap().id;
        assert!(
            html.contains(&format!("Profile of version {}", short(latest))),
            "{html}"
        );
    }

    #[test]
    fn a_version_is_chosen_by_a_prefix_of_its_id() {
        let ds = dataset("churn");
        let all = versions(&ds);
        let rejected = all.iter().find(|v| v.verdict == Verdict::Rejected).unwrap();
        assert_eq!(
            pick(&all, &ds, Some(&rejected.id[..8])).unwrap().id,
            rejected.id
        );
        assert!(pick(&all, &ds, Some("nosuchid")).is_none());
    }

    #[test]
    fn a_histogram_bar_per_bin_and_the_most_frequent_values_of_text() {
        let ds = dataset("iris");
        let all = versions(&ds);
        let mut text = numbers("species", Vec::new());
        text.type_ = ColumnType::String;
        text.histogram = None;
        text.min = None;
        text.top_values = ["setosa", "versicolor", "virginica"]
            .iter()
            .map(|v| ciclo_profile::ValueCount {
                value: v.to_string(),
                count: 50,
            })
            .collect();
        let profile = Profile {
            rows: 151,
            columns: vec![numbers("sepal_length", vec![3, 0, 9, 27, 1]), text],
        };
        let html = html(
            &ds,
            pick(&all, &ds, None).map(|v| (v, Some(Ok(Arc::new(profile))))),
            None,
        );
        let column = |name: &str| {
            let start = html.find(&format!("data-column=\"{name}\"")).unwrap();
            let rest = &html[start..];
            rest[..rest[1..].find("data-column=").map_or(rest.len(), |e| e + 1)].to_string()
        };
        assert_eq!(
            column("sepal_length")
                .matches("<rect class=\"bar\"")
                .count(),
            5
        );
        assert!(
            column("sepal_length").contains("<title>[40, 50]: 1</title>"),
            "{html}"
        );
        assert_eq!(column("species").matches("<rect class=\"bar\"").count(), 3);
        assert!(column("sepal_length").contains("nulls 1 (0.7 %)"));
    }

    #[test]
    fn an_unreadable_profile_says_why_and_the_versions_still_show() {
        let ds = dataset("iris");
        let all = versions(&ds);
        let html = html(
            &ds,
            pick(&all, &ds, None).map(|v| {
                (
                    v,
                    Some(Err("reading s3://ciclo/…: connection refused".into())),
                )
            }),
            None,
        );
        assert!(
            html.contains("The profile cannot be read: reading s3://ciclo/…: connection refused"),
            "{html}"
        );
        assert!(html.contains("CICLO_ARTIFACTS_AWS_ENDPOINT"));
        assert_eq!(html.matches("<tr data-version=").count(), all.len());
    }

    /// The profile a Dataset check writes of `csv`.
    async fn profile_of(csv: &str) -> Read {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.csv"), csv).unwrap();
        let store =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let input = ciclo_profile::Input {
            location: "d.csv".into(),
            relative: "d.csv".into(),
            size: csv.len() as u64,
        };
        let outcome = ciclo_profile::profile(store, vec![input], None, None)
            .await
            .unwrap();
        Some(Ok(Arc::new(outcome.profile)))
    }

    #[tokio::test]
    async fn drift_is_measured_per_column_from_the_base_version() {
        let ds = dataset("churn");
        let all = versions(&ds);
        let (newer, older) = (all[0], all[1]);
        // `steady` keeps its distribution; `moved` shifts to the top of its old range.
        let csv = |shift: i64| {
            let mut s = String::from("steady,moved\n");
            for i in 0..400_i64 {
                s += &format!("{},{}\n", i % 100, (i % 100 + shift).min(99));
            }
            s
        };
        let html = html(
            &ds,
            Some((newer, profile_of(&csv(60)).await)),
            Some((older, profile_of(&csv(0)).await)),
        );
        assert!(
            html.contains(&format!(
                "Drift of {} from {}",
                short(&newer.id),
                short(&older.id)
            )),
            "{html}"
        );
        assert!(html.contains("PSI per column, flagged above 0.2"));
        assert!(html.contains("(the Dataset declares no drift limit)"));
        let row = |column: &str| {
            let start = html.find(&format!("<tr data-column=\"{column}\"")).unwrap();
            html[start..start + html[start..].find("</tr>").unwrap()].to_string()
        };
        assert!(row("moved").contains("above the limit"), "{}", row("moved"));
        assert!(row("steady").contains("within"), "{}", row("steady"));
        // The rows' links keep the shown version and set the base.
        assert!(
            html.contains(&format!(
                "href=\"/datasets/ml/churn?version={}&amp;base={}\"",
                short(&newer.id),
                short(&older.id)
            )),
            "{html}"
        );
    }
}

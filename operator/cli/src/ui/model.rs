//! A model's page (`/models/{namespace}/{model}`): its versions over time as a chart of each
//! metric they report (which were blessed, which serve), then each version's gate verdicts
//! and the baseline each was judged against.

use super::chart::{self, Point};
use super::cluster::Health;
use super::short;
use ciclo_api::conditions::{self, Kstatus};
use ciclo_api::model_version::BLESSED;
use ciclo_api::{ModelDeployment, ModelVersion};
use ciclo_core::metrics::Direction;
use jiff::Timestamp;
use maud::{Markup, html};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the page shows of one model.
pub struct Model<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The namespace's versions (of every model: the page picks this one's).
    pub versions: &'a Result<Vec<Arc<ModelVersion>>, Health>,
    /// The namespace's deployments (which serve a version of it).
    pub deployments: &'a Result<Vec<Arc<ModelDeployment>>, Health>,
}

/// The page's `<main>`.
pub fn render(model: &Model, now: Timestamp) -> Markup {
    html! {
        h1 { "Model " (model.name) }
        p.note { "namespace " (model.namespace) }
        @match model.versions {
            Ok(all) => (versions(model, all, now)),
            Err(health) => (super::overview::unavailable("model versions", health)),
        }
    }
}

fn versions(model: &Model, all: &[Arc<ModelVersion>], now: Timestamp) -> Markup {
    let mut mine: Vec<&ModelVersion> = all
        .iter()
        .map(AsRef::as_ref)
        .filter(|mv| {
            mv.metadata.namespace.as_deref() == Some(model.namespace) && mv.spec.model == model.name
        })
        .collect();
    mine.sort_by_key(|mv| mv.spec.version);
    if mine.is_empty() {
        return html! { p.note { "No version of this model is registered (yet)." } };
    }
    // Which deployment serves (or rolls out) which version.
    let mut serving: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if let Ok(deployments) = model.deployments {
        for md in deployments.iter().filter(|md| {
            md.metadata.namespace.as_deref() == Some(model.namespace)
                && md.spec.model.name == model.name
        }) {
            let name = md.metadata.name.clone().unwrap_or_default();
            if let Some(v) = md.status.as_ref().and_then(|s| s.serving_version) {
                serving.entry(v).or_default().push(name);
            }
        }
    }
    // Every metric any version reports, with its direction where the run declared it.
    let directions: BTreeMap<String, Direction> = mine
        .iter()
        .filter_map(|mv| mv.registered())
        .flat_map(|g| g.metrics.into_iter().map(|m| (m.name, m.direction)))
        .collect();
    let metrics: BTreeSet<&String> = mine
        .iter()
        .flat_map(|mv| mv.spec.lineage.metrics.keys())
        .collect();
    html! {
        section #charts {
            h2 { "Metrics by version" }
            p.legend {
                span.key.blessed { "●" } " blessed  "
                span.key.rejected { "●" } " not blessed  "
                span.key.pending { "●" } " not judged yet  "
                span.key.served { "◎" } " serving"
            }
            @for metric in &metrics {
                (chart::line(
                    &match directions.get(*metric) {
                        Some(Direction::Maximize) => format!("{metric} (higher is better)"),
                        Some(Direction::Minimize) => format!("{metric} (lower is better)"),
                        None => metric.to_string(),
                    },
                    "version",
                    &points(&mine, metric, &serving),
                ))
            }
        }
        section #versions {
            h2 { "Versions" }
            table {
                thead { tr {
                    th { "Version" } th { "Registered" } th { "Blessed" } th { "Gates" }
                    th { "Data" } th { "Serving" }
                } }
                tbody {
                    @for mv in mine.iter().rev() {
                        @let blessed = verdict(mv);
                        tr data-version=(mv.spec.version) {
                            td { (mv.spec.version) }
                            td { (mv.metadata.creation_timestamp.as_ref().map(|t| crate::get::table::age(t.0, now) + " ago").unwrap_or_default()) }
                            td class=(blessed.0) title=(blessed.2) { (blessed.1) }
                            td {
                                @for g in mv.status.iter().flat_map(|s| s.gates.iter()) {
                                    div class=(if g.passed { "True" } else { "False" }) {
                                        (g.metric) " "
                                        (g.value.map(crate::get::summary::number).unwrap_or_else(|| "missing".into()))
                                        @if let Some(t) = g.threshold { " vs " (crate::get::summary::number(t)) }
                                        @if let Some(b) = g.baseline_version { " (baseline version " (b) ")" }
                                        ": " (if g.passed { "passed" } else { "failed" })
                                    }
                                }
                            }
                            td { (mv.spec.lineage.dataset.name) " @ " (short(&mv.spec.lineage.dataset.version)) }
                            td { (serving.get(&mv.spec.version).map(|d| d.join(", ")).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// One point per version that reports `metric`.
fn points(
    mine: &[&ModelVersion],
    metric: &str,
    serving: &BTreeMap<i64, Vec<String>>,
) -> Vec<Point> {
    mine.iter()
        .filter_map(|mv| {
            let value = *mv.spec.lineage.metrics.get(metric)?;
            let (class, said, _) = verdict(mv);
            let served = serving.contains_key(&mv.spec.version);
            let class = match class {
                "True" => "blessed",
                "False" => "rejected",
                _ => "pending",
            };
            Some(Point {
                x: mv.spec.version as f64,
                y: value,
                title: format!(
                    "version {}: {metric} {} ({said}{})",
                    mv.spec.version,
                    crate::get::summary::number(value),
                    if served { ", serving" } else { "" }
                ),
                class: if served {
                    format!("{class} served")
                } else {
                    class.into()
                },
                href: None,
                x_label: mv.spec.version.to_string(),
            })
        })
        .collect()
}

/// The Blessed condition: its status (as a CSS class), in words, and its message.
fn verdict(mv: &ModelVersion) -> (&'static str, String, String) {
    match mv
        .status
        .as_ref()
        .and_then(|s| conditions::find(s.conditions(), BLESSED))
    {
        Some(c) if c.status == "True" => ("True", "blessed".into(), c.message.clone()),
        Some(c) if c.status == "False" => ("False", format!("no: {}", c.reason), c.message.clone()),
        _ => ("Unknown", "not judged yet".into(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::fixtures;
    use crate::ui::all;

    #[test]
    fn one_point_per_version_in_each_metric_chart_and_the_served_one_marked() {
        let versions = all(fixtures::model_versions());
        let deployments = all(fixtures::model_deployments());
        let model = Model {
            namespace: "ml",
            name: "iris",
            versions: &versions,
            deployments: &deployments,
        };
        let html = render(&model, fixtures::NOW.parse().unwrap()).into_string();
        let iris: Vec<_> = fixtures::model_versions()
            .into_iter()
            .filter(|mv| mv.spec.model == "iris")
            .collect();
        for metric in iris
            .iter()
            .flat_map(|mv| mv.spec.lineage.metrics.keys())
            .collect::<BTreeSet<_>>()
        {
            let reporting = iris
                .iter()
                .filter(|mv| mv.spec.lineage.metrics.contains_key(metric))
                .count();
            let chart = &html[html.find(&format!("aria-label=\"{metric}")).expect(metric)..];
            let chart = &chart[..chart.find("</svg>").unwrap()];
            assert_eq!(
                chart.matches("<circle").count(),
                reporting,
                "{metric}: {chart}"
            );
        }
        assert!(
            html.contains("point blessed served"),
            "the serving version 2 is blessed and ringed: {html}"
        );
        assert!(
            html.contains("class=\"point rejected\""),
            "version 3 failed a gate: {html}"
        );
        assert_eq!(html.matches("<tr data-version=").count(), iris.len());
        assert!(html.contains("failed"), "the failed gate is shown: {html}");
    }

    #[test]
    fn a_model_without_versions_or_a_forbidden_kind_says_so() {
        let none = Ok(Vec::new());
        let no_deployments = Ok(Vec::new());
        let html = render(
            &Model {
                namespace: "ml",
                name: "nope",
                versions: &none,
                deployments: &no_deployments,
            },
            Timestamp::UNIX_EPOCH,
        )
        .into_string();
        assert!(html.contains("No version of this model"), "{html}");
        let forbidden = Err(Health::Forbidden("cannot list".into()));
        let html = render(
            &Model {
                namespace: "ml",
                name: "iris",
                versions: &forbidden,
                deployments: &no_deployments,
            },
            Timestamp::UNIX_EPOCH,
        )
        .into_string();
        assert!(html.contains("class=\"forbidden\""), "{html}");
    }
}

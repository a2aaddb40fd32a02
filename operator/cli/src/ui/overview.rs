//! The overview (`/`): every Dataset, TrainingRun, ModelVersion and ModelDeployment of the
//! scope with its Ready condition, reason and age, and above them what needs attention
//! first: whatever is Stalled, the newest dataset version rejected, the last run failed, the
//! last rollout rolled back.

use super::cluster::Health;
use crate::get::summary::{Details, Summarize, Summary, number, sort};
use crate::get::table::age;
use ciclo_api::conditions::{self, Kstatus, STALLED};
use ciclo_api::dataset::Verdict;
use ciclo_api::{Dataset, ModelDeployment, ModelVersion, TrainingRun};
use jiff::Timestamp;
use maud::{Markup, html};
use std::sync::Arc;

/// What the overview shows: each kind's objects, or why they cannot be shown.
pub struct Snapshot {
    pub datasets: Result<Vec<Arc<Dataset>>, Health>,
    pub training_runs: Result<Vec<Arc<TrainingRun>>, Health>,
    pub model_versions: Result<Vec<Arc<ModelVersion>>, Health>,
    pub model_deployments: Result<Vec<Arc<ModelDeployment>>, Health>,
}

/// Something a person should look at, and why.
struct Attention {
    what: String,
    why: String,
}

/// The overview's `<main>`.
pub fn render(snapshot: &Snapshot, now: Timestamp) -> Markup {
    let mut attention = Vec::new();
    let datasets = summaries(&snapshot.datasets, &mut attention);
    let runs = summaries(&snapshot.training_runs, &mut attention);
    let versions = summaries(&snapshot.model_versions, &mut attention);
    let deployments = summaries(&snapshot.model_deployments, &mut attention);
    for s in [&datasets, &runs, &versions, &deployments]
        .into_iter()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
    {
        attention.extend(problem(s));
    }
    html! {
        h1 { "The cycle" }
        section #attention {
            h2 { "Needs attention" }
            @if attention.is_empty() {
                p.note { "Nothing is stalled, rejected, failed or rolled back." }
            } @else {
                ul.attention {
                    @for a in &attention {
                        li { strong { (a.what) } " " span.why { (a.why) } }
                    }
                }
            }
        }
        (section("datasets", "Datasets", &datasets, now, &["Latest version", "Rows", "Newest checked"], |s| match &s.details {
            Details::Dataset(d) => vec![
                html! { (short(d.latest.as_deref())) },
                html! { (d.rows.map(|r| r.to_string()).unwrap_or_default()) },
                match (&d.newest, d.verdict) {
                    (Some(id), Some(v)) => html! { (short(Some(id))) " " (format!("{v:?}")) },
                    _ => html! {},
                },
            ],
            _ => Vec::new(),
        }))
        (section("trainingruns", "Training runs", &runs, now, &["Model", "Dataset", "Run", "Last model version"], |s| match &s.details {
            Details::TrainingRun(t) => vec![
                model_link(&s.namespace, &t.model),
                match &t.dataset_version {
                    Some(v) => html! { (t.dataset) " @ " (short(Some(v))) },
                    None => html! { (t.dataset) },
                },
                html! { ([t.run.clone(), t.phase.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ")) },
                html! { (t.last_model_version.map(|v| v.to_string()).unwrap_or_default()) },
            ],
            _ => Vec::new(),
        }))
        (section("modelversions", "Model versions", &versions, now, &["Model", "Version", "Blessed", "Metrics"], |s| match &s.details {
            Details::ModelVersion(m) => vec![
                model_link(&s.namespace, &m.model),
                html! { (m.version) },
                html! { span class=(m.blessed.status) { (m.blessed.status) } " " (m.blessed.reason) },
                html! { (m.metrics.iter().map(|x| format!("{} {}", x.name, number(x.value))).collect::<Vec<_>>().join(", ")) },
            ],
            _ => Vec::new(),
        }))
        (section("modeldeployments", "Model deployments", &deployments, now, &["Model", "Serving", "Rollout"], |s| match &s.details {
            Details::ModelDeployment(m) => vec![
                model_link(&s.namespace, &m.model),
                html! { (m.serving.map(|v| format!("version {v}")).unwrap_or_default()) },
                html! { (match (m.canary, m.weight, m.step) {
                    (Some(c), w, step) => format!(
                        "version {c} at {}% (step {} of {})",
                        w.unwrap_or(0),
                        step.unwrap_or(0),
                        m.steps
                    ),
                    _ => m.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
                }) },
            ],
            _ => Vec::new(),
        }))
    }
}

/// The kind's summaries, sorted, each Stalled one also noted in `attention`.
fn summaries<K>(
    objects: &Result<Vec<Arc<K>>, Health>,
    attention: &mut Vec<Attention>,
) -> Result<Vec<Summary>, Health>
where
    K: Summarize + kube::Resource<DynamicType = ()> + HasStatus,
{
    let objects = objects.as_ref().map_err(Clone::clone)?;
    for o in objects {
        if let Some(c) = o
            .kstatus()
            .and_then(|s| conditions::find(s, STALLED))
            .filter(|c| c.status == "True")
        {
            attention.push(Attention {
                what: format!(
                    "{} {} is stalled: {}",
                    K::kind(&()),
                    name(o.as_ref()),
                    c.reason
                ),
                why: c.message.clone(),
            });
        }
    }
    let mut out: Vec<Summary> = objects.iter().map(|o| o.summarize()).collect();
    sort(&mut out);
    Ok(out)
}

/// What else in a summary asks for a look: a rejected newest version, a failed last run,
/// a rollout rolled back.
fn problem(s: &Summary) -> Option<Attention> {
    let who = format!("{}/{}", s.namespace, s.name);
    match &s.details {
        Details::Dataset(d) if d.verdict == Some(Verdict::Rejected) => Some(Attention {
            what: format!(
                "Dataset {who}: version {} rejected",
                short(d.newest.as_deref())
            ),
            why: d.reasons.join("; "),
        }),
        Details::TrainingRun(t) if t.failure.is_some() => Some(Attention {
            what: format!(
                "TrainingRun {who}: run {} failed",
                t.run.as_deref().unwrap_or("?")
            ),
            why: t.failure.clone().unwrap_or_default(),
        }),
        Details::ModelDeployment(m)
            if m.last_rollout
                .as_ref()
                .is_some_and(|r| r.result == "RolledBack") =>
        {
            let r = m.last_rollout.as_ref()?;
            Some(Attention {
                what: format!("ModelDeployment {who}: version {} rolled back", r.version),
                why: r.reason.clone(),
            })
        }
        _ => None,
    }
}

/// A kind's table, or why it is missing.
fn section(
    id: &str,
    title: &str,
    rows: &Result<Vec<Summary>, Health>,
    now: Timestamp,
    columns: &[&str],
    cells: impl Fn(&Summary) -> Vec<Markup>,
) -> Markup {
    html! {
        section id=(id) {
            h2 { (title) }
            @match rows {
                Ok(rows) if rows.is_empty() => p.note { "None." },
                Ok(rows) => table {
                    thead { tr {
                        th { "Name" } th { "Ready" } th { "Reason" }
                        @for c in columns { th { (c) } }
                        th { "Age" }
                    } }
                    tbody {
                        @for s in rows {
                            tr data-name=(format!("{}/{}", s.namespace, s.name)) {
                                td {
                                    @match page_of(id, s) {
                                        Some(href) => a href=(href) { (s.name) },
                                        None => (s.name),
                                    }
                                }
                                td class=(s.ready.status) { (s.ready.status) }
                                td title=(s.ready.message) { (s.ready.reason) }
                                @for c in cells(s) { td { (c) } }
                                td { (s.created.map(|c| age(c, now)).unwrap_or_default()) }
                            }
                        }
                    }
                },
                Err(health) => (unavailable(&title.to_lowercase(), health)),
            }
        }
    }
}

/// The page of a row's object, for the kinds that have one.
fn page_of(section: &str, s: &Summary) -> Option<String> {
    let kind = match section {
        "datasets" => "datasets",
        "modeldeployments" => "deployments",
        _ => return None,
    };
    Some(format!("/{kind}/{}/{}", s.namespace, s.name))
}

/// What a page says where a kind cannot be shown: forbidden to this user, failing, or not
/// listed yet.
pub fn unavailable(what: &str, health: &Health) -> Markup {
    html! {
        @match health {
            Health::Forbidden(message) => p.forbidden {
                "Forbidden: your credentials may not list " (what) " here (" (message) ")."
            },
            Health::Failing(message) => p.failing { "Cannot read " (what) ": " (message) " (retrying)." },
            Health::Loading | Health::Ready => p.note { "Loading " (what) "…" },
        }
    }
}

/// A page's `<main>` (headed `title`) when its object is not there: `kind` `name` does not
/// exist in `namespace`, or `what` (the kind, in words) cannot be read (`Err`).
pub fn missing(
    title: &str,
    (kind, what): (&str, &str),
    namespace: &str,
    name: &str,
    found: Result<(), &Health>,
) -> Markup {
    html! {
        h1 { (title) }
        p.note { "namespace " (namespace) }
        @match found {
            Ok(()) => p.note { "There is no " (kind) " " (name) " in namespace " (namespace) "." },
            Err(health) => (unavailable(what, health)),
        }
    }
}

/// A link to a model's page.
fn model_link(namespace: &str, model: &str) -> Markup {
    html! { a href=(format!("/models/{namespace}/{model}")) { (model) } }
}

fn name<K: kube::Resource>(o: &K) -> String {
    format!(
        "{}/{}",
        o.meta().namespace.as_deref().unwrap_or_default(),
        o.meta().name.as_deref().unwrap_or_default()
    )
}

/// A version id as people read it, or nothing.
fn short(id: Option<&str>) -> String {
    id.map(super::short).unwrap_or_default()
}

/// The conditions of each kind's status.
pub trait HasStatus {
    fn kstatus(&self) -> Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>;
}

macro_rules! has_status {
    ($($kind:ty),*) => {$(
        impl HasStatus for $kind {
            fn kstatus(&self) -> Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]> {
                self.status.as_ref().map(|s| s.conditions())
            }
        }
    )*};
}
has_status!(Dataset, TrainingRun, ModelVersion, ModelDeployment);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::fixtures;
    use crate::ui::all;

    fn now() -> Timestamp {
        fixtures::NOW.parse().unwrap()
    }

    #[test]
    fn every_object_is_a_row_and_what_went_wrong_comes_first() {
        let snapshot = Snapshot {
            datasets: all(fixtures::datasets()),
            training_runs: all(fixtures::training_runs()),
            model_versions: all(fixtures::model_versions()),
            model_deployments: all(fixtures::model_deployments()),
        };
        let html = render(&snapshot, now()).into_string();
        for name in [
            "ml/iris",
            "ml/churn",
            "ml/iris-train",
            "ml/fraud-train",
            "ml/iris-2",
            "ml/iris-10",
        ] {
            assert!(
                html.contains(&format!("data-name=\"{name}\"")),
                "{name}: {html}"
            );
        }
        let attention =
            &html[html.find("Needs attention").unwrap()..html.find("id=\"datasets\"").unwrap()];
        assert!(
            attention.contains("Dataset ml/churn: version"),
            "{attention}"
        );
        assert!(attention.contains("rejected"), "{attention}");
        assert!(
            attention.contains("TrainingRun ml/fraud-train: run"),
            "{attention}"
        );
        assert!(
            !attention.contains("ml/iris-train"),
            "a healthy run is not listed: {attention}"
        );
        assert!(
            html.contains("version 3 at 25% (step 2 of 4)"),
            "the canary: {html}"
        );
        assert!(
            html.contains("<a href=\"/models/ml/iris\">iris</a>"),
            "models link to their page: {html}"
        );
        assert!(
            html.contains("<a href=\"/datasets/ml/churn\">churn</a>"),
            "datasets link to their page: {html}"
        );
        assert!(
            html.contains("<a href=\"/deployments/ml/iris\">iris</a>"),
            "deployments link to their page: {html}"
        );
    }

    #[test]
    fn a_kind_the_user_may_not_read_says_forbidden_and_the_rest_shows() {
        let snapshot = Snapshot {
            datasets: all(fixtures::datasets()),
            training_runs: Ok(Vec::new()),
            model_versions: Err(Health::Forbidden(
                "modelversions.ciclo.dev is forbidden: User \"dev\" cannot list resource".into(),
            )),
            model_deployments: Err(Health::Loading),
        };
        let html = render(&snapshot, now()).into_string();
        let versions = &html[html.find("id=\"modelversions\"").unwrap()..];
        assert!(versions.contains("class=\"forbidden\""), "{versions}");
        assert!(versions.contains("cannot list resource"), "{versions}");
        assert!(
            html.contains("data-name=\"ml/iris\""),
            "datasets still show"
        );
        assert!(html.contains("Loading"));
    }

    #[test]
    fn names_and_messages_are_escaped() {
        let mut ds = fixtures::datasets();
        ds[0].metadata.name = Some("<script>x</script>".into());
        let snapshot = Snapshot {
            datasets: all(ds),
            training_runs: Ok(Vec::new()),
            model_versions: Ok(Vec::new()),
            model_deployments: Ok(Vec::new()),
        };
        let html = render(&snapshot, now()).into_string();
        assert!(!html.contains("<script>x"), "{html}");
        assert!(html.contains("&lt;script&gt;x"));
    }

    #[test]
    fn a_missing_object_or_an_unreadable_kind_says_which() {
        let gone = missing(
            "Dataset iris",
            ("Dataset", "datasets"),
            "ml",
            "iris",
            Ok(()),
        )
        .into_string();
        assert!(
            gone.contains("There is no Dataset iris in namespace ml."),
            "{gone}"
        );
        let health = Health::Forbidden("datasets is forbidden".into());
        let forbidden = missing(
            "Dataset iris",
            ("Dataset", "datasets"),
            "ml",
            "iris",
            Err(&health),
        )
        .into_string();
        assert!(
            forbidden.contains("Forbidden: your credentials may not list datasets"),
            "{forbidden}"
        );
    }
}

//! A deployment's page (`/deployments/{namespace}/{deployment}`): what serves and what rolls
//! out, the canary's steps (passed, in progress, to come), the rollout's timeline from the
//! operator's Events (each step passed with its analysis figures, promotions, rollbacks with
//! their reasons) and the rollouts its status records.

use super::cluster::Health;
use super::traffic::Reading;
use ciclo_api::model_deployment::{RolloutResult, StrategyType};
use ciclo_api::{ModelDeployment, conditions};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use maud::{Markup, html};
use std::sync::Arc;

/// What the page shows of one deployment.
pub struct Page<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub deployment: &'a ModelDeployment,
    /// The namespace's ModelDeployment Events (the page picks this one's).
    pub events: &'a Result<Vec<Arc<Event>>, Health>,
    /// Its serving pods' traffic, read as the page was.
    pub traffic: &'a Reading,
}

/// The page's `<main>`.
pub fn render(page: &Page, now: Timestamp) -> Markup {
    let md = page.deployment;
    let status = md.status.clone().unwrap_or_default();
    let ready = conditions::find(&status.conditions, conditions::READY);
    let model = &md.spec.model.name;
    html! {
        h1 { "Deployment " (page.name) }
        p.note {
            "namespace " (page.namespace) " · model "
            a href=(format!("/models/{}/{model}", page.namespace)) { (model) }
            @if let Some(e) = &status.endpoint { " · " (e) }
        }
        @if let Some(c) = ready {
            p { span class=(c.status) { "Ready " (c.status) } " " (c.reason) ": " span.why { (c.message) } }
        }
        section #rollout {
            h2 { "Rollout" }
            p {
                @match status.serving_version {
                    Some(v) => { "Version " strong { (v) } " serves" }
                    None => "No version serves yet",
                }
                @if let Some(c) = status.canary_version {
                    "; version " strong { (c) } " takes " (status.canary_weight.unwrap_or(0)) "% of traffic"
                }
                @if let Some(p) = status.phase { " (" (format!("{p:?}")) ")" }
                "."
            }
            @if md.spec.strategy.type_ == StrategyType::Canary {
                ol.steps {
                    @for (i, step) in md.spec.strategy.steps.iter().enumerate() {
                        @let state = step_state(i, status.canary_version.is_some(), status.step_index);
                        li class=(format!("step {state}")) data-weight=(step.weight) {
                            "step " (i + 1) ": " (step.weight) "% for " (step.pause)
                            @if state == "current" { " — in progress" }
                        }
                    }
                }
            } @else {
                p.note { "Rolling update: a new version is fully up before the old one goes (no steps)." }
            }
            p.note {
                "Analysis: at most " (crate::get::summary::number(md.spec.analysis.max_error_ratio * 100.0)) "% errors"
                @if let Some(p99) = md.spec.analysis.max_p99_latency_ms { ", p99 at most " (p99) " ms" }
                ", judged after " (md.spec.analysis.min_requests) " requests per step."
            }
        }
        section #timeline {
            h2 { "Timeline" }
            (timeline(page, now))
        }
        section #history {
            h2 { "Rollouts" }
            @if status.history.is_empty() {
                p.note { "No rollout has ended yet." }
            } @else {
                table {
                    thead { tr { th { "Version" } th { "From" } th { "Result" } th { "Why" } th { "Ended" } } }
                    tbody {
                        @for r in &status.history {
                            tr data-version=(r.version) {
                                td { (r.version) }
                                td { (r.from.map(|v| v.to_string()).unwrap_or_default()) }
                                td class=(match r.result { RolloutResult::Promoted => "True", RolloutResult::RolledBack => "False", _ => "" }) { (r.result.as_str()) }
                                td { (r.reason) }
                                td { (crate::get::table::age(r.finished, now)) " ago" }
                            }
                        }
                    }
                }
            }
        }
        // Read again every few seconds while the page is open (live.js).
        section #traffic data-refresh="5" {
            h2 { "Traffic" }
            (traffic(page.traffic))
        }
    }
}

/// The serving pods' request rate, error ratio and p99 since the page's previous reading.
fn traffic(reading: &Reading) -> Markup {
    match reading {
        Reading::Forbidden(message) => html! {
            p.forbidden {
                "Forbidden: your credentials may not read the serving pods' metrics (list pods, "
                "get pods/proxy): " (message) "."
            }
        },
        Reading::Failed(why) => html! { p.failing { "Cannot read the serving pods: " (why) "." } },
        Reading::Pods(pods) if pods.is_empty() => html! { p.note { "No serving pod is running." } },
        Reading::Pods(pods) => html! {
            table {
                thead { tr { th { "Pod" } th { "Version" } th { "Requests/s" } th { "Errors" } th { "p99" } } }
                tbody {
                    @for p in pods {
                        tr data-pod=(p.pod) data-version=(p.version) {
                            td { (p.pod) }
                            td { (p.version) }
                            @match (&p.problem, &p.window) {
                                (Some(problem), _) => td.failing colspan="3" { (problem) },
                                (None, None) => td.note colspan="3" { "measuring (a rate needs two readings, a few seconds apart)" },
                                (None, Some(w)) => {
                                    td { (format!("{:.2}", w.requests_per_second)) }
                                    td { (w.error_ratio.map(|r| format!("{:.2} %", r * 100.0)).unwrap_or_else(|| "–".into())) }
                                    td { (w.p99.clone().unwrap_or_else(|| "–".into())) }
                                }
                            }
                        }
                    }
                }
            }
            p.note { "Read from each pod's metrics through the API server, as the canary analysis reads them." }
        },
    }
}

/// Where step `i` is: passed, in progress, or to come (all passed once no canary runs).
fn step_state(i: usize, canary: bool, current: Option<i32>) -> &'static str {
    match (canary, current) {
        (true, Some(c)) if (i as i32) < c => "done",
        (true, Some(c)) if i as i32 == c => "current",
        (true, _) => "pending",
        (false, _) => "idle",
    }
}

/// This deployment's Events, newest first.
fn timeline(page: &Page, now: Timestamp) -> Markup {
    let events = match page.events {
        Ok(events) => events,
        Err(health) => return super::overview::unavailable("events", health),
    };
    let mut mine: Vec<&Event> = events
        .iter()
        .map(AsRef::as_ref)
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("ModelDeployment")
                && e.involved_object.name.as_deref() == Some(page.name)
                && e.metadata.namespace.as_deref() == Some(page.namespace)
        })
        .collect();
    let when = |e: &Event| -> Option<Timestamp> {
        e.event_time
            .as_ref()
            .map(|t| t.0)
            .or(e.last_timestamp.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    mine.sort_by_key(|e| std::cmp::Reverse(when(e)));
    html! {
        @if mine.is_empty() {
            p.note { "No Event of this deployment is kept (the API server keeps them for an hour by default)." }
        } @else {
            ol.timeline {
                @for e in &mine {
                    li.event data-reason=(e.reason.as_deref().unwrap_or_default()) class=(if e.type_.as_deref() == Some("Warning") { "False" } else { "" }) {
                        span.note { (when(e).map(|t| crate::get::table::age(t, now) + " ago").unwrap_or_default()) } " "
                        strong { (e.reason.as_deref().unwrap_or_default()) } " "
                        (e.message.as_deref().unwrap_or_default())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::fixtures;
    use crate::ui::all;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn now() -> Timestamp {
        fixtures::NOW.parse().unwrap()
    }

    fn deployment(name: &str) -> ModelDeployment {
        fixtures::model_deployments()
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    fn event(deployment: &str, reason: &str, message: &str, at: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                namespace: Some("ml".into()),
                name: Some(format!("{deployment}.{reason}")),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("ModelDeployment".into()),
                name: Some(deployment.into()),
                namespace: Some("ml".into()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Normal".into()),
            event_time: Some(MicroTime(at.parse().unwrap())),
            ..Default::default()
        }
    }

    fn page(
        md: &ModelDeployment,
        events: &Result<Vec<Arc<Event>>, Health>,
        traffic: &Reading,
    ) -> String {
        let name = md.metadata.name.as_deref().unwrap();
        render(
            &Page {
                namespace: "ml",
                name,
                deployment: md,
                events,
                traffic,
            },
            now(),
        )
        .into_string()
    }

    #[test]
    fn the_canary_steps_show_which_passed_and_which_runs() {
        let md = deployment("iris");
        let html = page(&md, &all(Vec::new()), &Reading::Pods(Vec::new()));
        // The fixture: version 3 at step 2 of 4 (25 %) while 2 serves.
        assert_eq!(html.matches("<li class=\"step ").count(), 4, "{html}");
        assert_eq!(html.matches("<li class=\"step done\"").count(), 1);
        assert!(
            html.contains("<li class=\"step current\" data-weight=\"25\">"),
            "{html}"
        );
        assert_eq!(html.matches("<li class=\"step pending\"").count(), 2);
        assert!(html.contains("takes 25% of traffic"));
    }

    #[test]
    fn the_timeline_is_this_deployments_events_newest_first_and_history_its_rollouts() {
        let md = deployment("churn");
        let events = all(vec![
            event(
                "churn",
                "RolloutStarted",
                "version 4 replaces 3",
                "2026-11-27T08:00:00Z",
            ),
            event(
                "churn",
                "StepPassed",
                "version 4, step 1 at weight 50: 812 requests, 0 errors",
                "2026-11-27T08:10:00Z",
            ),
            event(
                "churn",
                "Promoted",
                "version 4 serves all traffic (replacing version 3)",
                "2026-11-27T08:20:00Z",
            ),
            event(
                "iris",
                "RolledBack",
                "not this deployment's",
                "2026-11-27T08:30:00Z",
            ),
        ]);
        let html = page(&md, &events, &Reading::Pods(Vec::new()));
        let reasons: Vec<&str> = html
            .split("data-reason=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        assert_eq!(reasons, ["Promoted", "StepPassed", "RolloutStarted"]);
        assert!(html.contains("812 requests, 0 errors"));
        assert!(html.contains("<tr data-version=\"4\">"), "{html}");
        assert!(html.contains("all steps passed"));
    }

    #[test]
    fn events_the_user_may_not_read_say_forbidden_and_the_rest_shows() {
        let md = deployment("churn");
        let html = page(
            &md,
            &Err(Health::Forbidden("events is forbidden".into())),
            &Reading::Forbidden("pods is forbidden".into()),
        );
        assert!(
            html.contains("Forbidden: your credentials may not list events"),
            "{html}"
        );
        assert!(html.contains("<tr data-version=\"4\">"));
    }

    #[test]
    fn each_serving_pod_shows_its_version_and_traffic_once_measured() {
        use super::super::traffic::{PodTraffic, Window};
        let md = deployment("iris");
        let traffic = Reading::Pods(vec![
            PodTraffic {
                pod: "iris-2-a".into(),
                version: "2".into(),
                window: Some(Window {
                    seconds: 5.0,
                    requests_per_second: 12.5,
                    error_ratio: Some(0.004),
                    p99: Some("≤ 25 ms".into()),
                }),
                problem: None,
            },
            PodTraffic {
                pod: "iris-3-b".into(),
                version: "3".into(),
                window: None,
                problem: None,
            },
        ]);
        let html = page(&md, &all(Vec::new()), &traffic);
        assert_eq!(html.matches("<tr data-pod=").count(), 2, "{html}");
        assert!(
            html.contains("<td>12.50</td><td>0.40 %</td><td>≤ 25 ms</td>"),
            "{html}"
        );
        assert!(html.contains("measuring"), "{html}");
        assert!(
            html.contains("data-refresh=\"5\""),
            "the page reads the traffic again"
        );
    }
}

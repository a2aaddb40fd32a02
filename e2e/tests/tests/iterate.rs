//! Iterating for months: a TrainingRun run more times than its history keeps records each
//! run once and then goes quiet, and a spec whose Job or Deployment the API server refuses
//! gets a verdict on the object instead of a retry storm in the operator's log.

use ciclo_e2e::resources::{TIMEOUT, apply, condition, request_reconcile, status, wait_status};
use ciclo_e2e::wait_for;
use ciclo_e2e::world::{USER_TRAINER, points, start, user_run};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Resource, ResourceExt as _};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Every object of the kinds ciclo writes in `ns`, by kind and name, with its
/// resourceVersion: any write (status, annotation, create, delete, a new Event) changes it.
async fn writes_snapshot(w: &ciclo_e2e::world::World) -> BTreeMap<String, String> {
    let ns = &w.ns.name;
    let mut out = BTreeMap::new();
    for (kind, api) in [
        ("Dataset", &w.datasets),
        ("TrainingRun", &w.runs),
        ("ModelVersion", &w.versions),
    ] {
        out.extend(versions(kind, api).await);
    }
    out.extend(versions("Job", &Api::<Job>::namespaced(w.client.clone(), ns)).await);
    out.extend(versions("Event", &Api::<Event>::namespaced(w.client.clone(), ns)).await);
    out
}

/// `kind/name` → resourceVersion of every object `api` lists.
async fn versions<K>(kind: &str, api: &Api<K>) -> Vec<(String, String)>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let listed = api.list(&ListParams::default()).await.unwrap().items;
    listed
        .iter()
        .map(|o| (format!("{kind}/{}", o.name_any()), rv(o)))
        .collect()
}

fn rv<K: Resource>(o: &K) -> String {
    o.meta().resource_version.clone().unwrap_or_default()
}

/// The Events about TrainingRun `name` with `reason`.
async fn events_about(client: &kube::Client, ns: &str, name: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn five_runs_past_a_history_of_two_are_recorded_once_and_then_the_operator_is_quiet() {
    let w = start("iterate-history", &points(11, 30, 0)).await;
    let ns = w.ns.name.clone();
    apply(
        &ns,
        &user_run("daily", USER_TRAINER, 0.95, 0.9)
            .replace("  gates:", "  historyLimit: 2\n  gates:"),
    );
    for n in 1..=5 {
        if n > 1 {
            request_reconcile(&ns, "trainingrun", "daily", &format!("iteration-{n}"));
        }
        wait_status(&w.runs, "daily", &format!("run {n} recorded"), |s| {
            s["lastModelVersion"] == n && s["currentRun"].is_null()
        })
        .await;
    }
    let jobs: Api<Job> = Api::namespaced(w.client.clone(), &ns);
    let selector = ListParams::default().labels("ciclo.dev/training-run=daily");
    // The runs outside the history lose their Jobs; the history's carry the marker. (ciclo
    // records a run as its pod finishes; the Job controller marks the Job complete a moment
    // later, a write of its own that the quiet below must not count.)
    wait_for(
        TIMEOUT,
        "only the history's Jobs, recorded and complete",
        || async {
            let items = jobs.list(&selector).await?.items;
            Ok(items.len() <= 2
                && items.iter().all(|j| {
                    j.annotations().contains_key("ciclo.dev/recorded")
                        && j.status.as_ref().is_some_and(|s| {
                            s.conditions
                                .iter()
                                .flatten()
                                .any(|c| c.type_ == "Complete" && c.status == "True")
                        })
                }))
        },
    )
    .await
    .unwrap();

    let before = writes_snapshot(&w).await;
    let quiet = Instant::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = writes_snapshot(&w).await;
    let changed: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
        .collect();
    assert!(
        changed.is_empty(),
        "{} of quiet, yet these were written: {changed:?}",
        humanize(quiet.elapsed())
    );

    let tr = status(&w.runs, "daily").await;
    assert_eq!(tr["lastModelVersion"], 5, "{tr}");
    let runs = tr["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{tr}");
    assert_eq!(
        (
            runs[0]["modelVersion"].as_i64(),
            runs[1]["modelVersion"].as_i64()
        ),
        (Some(5), Some(4)),
        "the newest two, newest first: {tr}"
    );
    assert_eq!(
        events_about(&w.client, &ns, "daily", "RunSucceeded")
            .await
            .len(),
        5,
        "each run announced once"
    );
    let versions = w
        .versions
        .list(&ListParams::default().labels("ciclo.dev/model=daily"))
        .await
        .unwrap()
        .items;
    let mut numbers: Vec<i64> = versions
        .iter()
        .filter_map(|v| v.data["spec"]["version"].as_i64())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3, 4, 5], "one ModelVersion per run");
    assert!(jobs.list(&selector).await.unwrap().items.len() <= 2);
}

fn humanize(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

/// Waits until `api`'s `name` is Stalled with reason `InvalidSpec` and returns its status.
async fn stalled_invalid(api: &Api<DynamicObject>, name: &str) -> Value {
    wait_status(api, name, "Stalled InvalidSpec", |s| {
        condition(s, "Stalled")
            .is_some_and(|c| c["reason"] == "InvalidSpec" && c["status"] == "True")
    })
    .await
}

/// Applies `yaml` (an object named `picky`) and returns its status once it is Stalled with
/// `InvalidSpec`, asserting that took under 10 s and that the message names `field`.
async fn apply_until_stalled(ns: &str, api: &Api<DynamicObject>, yaml: &str, field: &str) -> Value {
    let applied = Instant::now();
    apply(ns, yaml);
    let s = stalled_invalid(api, "picky").await;
    let took = applied.elapsed();
    let message = condition(&s, "Stalled").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains(field), "names the field: {message}");
    assert!(took < Duration::from_secs(10), "stalled after {took:?}");
    s
}

/// What a user sees of `name` over `period`: its status and the Events about it, which stay
/// as they are while ciclo waits for the spec to change.
async fn unchanged_for(
    w: &ciclo_e2e::world::World,
    api: &Api<DynamicObject>,
    name: &str,
    period: Duration,
) {
    let rv_of = || async { api.get(name).await.unwrap().metadata.resource_version };
    let events = || async {
        Api::<Event>::namespaced(w.client.clone(), &w.ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.name_any(), rv(&e)))
            .collect::<Vec<_>>()
    };
    let (rv0, ev0) = (rv_of().await, events().await);
    tokio::time::sleep(period).await;
    assert_eq!(
        rv_of().await,
        rv0,
        "{name} was written again while waiting for a spec change"
    );
    assert_eq!(events().await, ev0, "new Events about {name} while waiting");
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_job_or_deployment_the_api_server_refuses_stalls_its_owner_naming_the_field() {
    let w = start("iterate-invalid", &points(12, 30, 0)).await;
    let ns = w.ns.name.clone();
    // A node selector key that is no label key: the CRD cannot know, the Job's validation does.
    let bad_selector = user_run("picky", USER_TRAINER, 0.95, 0.9)
        .replace("  gates:", "  nodeSelector: {\"gpu type\": a100}\n  gates:");
    let s = apply_until_stalled(&ns, &w.runs, &bad_selector, "nodeSelector").await;
    assert_eq!(condition(&s, "Ready").unwrap()["status"], "False");
    assert_eq!(
        events_about(&w.client, &ns, "picky", "InvalidSpec")
            .await
            .len(),
        1,
        "one Warning Event"
    );
    unchanged_for(&w, &w.runs, "picky", Duration::from_secs(10)).await;
    // Fixing the spec is all it takes.
    apply(&ns, &user_run("picky", USER_TRAINER, 0.95, 0.9));
    wait_status(&w.runs, "picky", "a model version after the fix", |s| {
        s["lastModelVersion"] == 1
    })
    .await;

    // A ModelDeployment whose Deployment cannot be built: a fractional extended resource.
    let md = |resources: &str| {
        format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: picky}}
spec:
  model: {{name: picky}}
  {resources}
"#
        )
    };
    let deployments = ciclo_e2e::resources::ciclo(&w.client, &ns, "ModelDeployment");
    let gpu = md("resources: {limits: {example.com/gpu: 500m}}");
    apply_until_stalled(&ns, &deployments, &gpu, "example.com/gpu").await;
    unchanged_for(&w, &deployments, "picky", Duration::from_secs(10)).await;
    apply(&ns, &md(""));
    // Fixed: the Deployment is built (whether this test's model can serve is another story:
    // its stand-in trainer writes no model file).
    let built = Api::<Deployment>::namespaced(w.client.clone(), &ns);
    wait_for(TIMEOUT, "the fixed deployment's Deployment", || async {
        let listed = built
            .list(&ListParams::default().labels("ciclo.dev/deployment=picky"))
            .await?;
        Ok(!listed.items.is_empty())
    })
    .await
    .unwrap();
    wait_status(&deployments, "picky", "no longer stalled", |s| {
        s["observedGeneration"] == 2
            && condition(s, "Stalled").is_none_or(|c| c["status"] != "True")
    })
    .await;
}

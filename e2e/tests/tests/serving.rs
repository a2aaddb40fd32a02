//! ModelDeployments on the local cluster: blessed model versions served by `ciclo serve` pods,
//! reached through the ModelDeployment's Service by its DNS name (kube-proxy splits the traffic;
//! on the process node, whose Services route nothing, as its endpoints would be: see
//! `ciclo_e2e::load`), a new version rolled out by canary under steady load, a broken one
//! rolled back.

use ciclo_e2e::resources::{
    BROKEN_TRAINING_RUN, TIMEOUT, apply, ciclo, condition, status, wait_status,
};
use ciclo_e2e::wait_for;
use ciclo_e2e::world::{POINTS_TRAINING_RUN, World, points, points_request, start};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const DEPLOYMENT: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: points}
spec:
  model: {name: points, track: LatestBlessed}
  replicas: 2
  strategy:
    type: Canary
    steps: [{weight: 50, pause: 4s}]
  analysis: {minRequests: 10, maxErrorRatio: 0.0}
"#;

async fn endpoints(pods: &Api<Pod>) -> Vec<String> {
    ciclo_e2e::load::endpoints(pods, "points").await
}

/// One request at a time, every ~20 ms, to the serving pods (see `ciclo_e2e::load`).
fn steady_load(pods: &Api<Pod>) -> ciclo_e2e::load::Running {
    ciclo_e2e::load::start(pods.clone(), "points", "points", |_| {
        points_request(&[(0.9, 0.8)])
    })
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_blessed_version_is_served_a_better_one_canaried_in_without_errors_and_a_broken_one_rolled_back()
 {
    let w = start("serving", &points(11, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, POINTS_TRAINING_RUN);
    apply(&ns, DEPLOYMENT);
    let deployments = ciclo(&w.client, &ns, "ModelDeployment");
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &ns);

    // Version 1 serves, at both pods.
    let s = wait_status(&deployments, "points", "version 1 serving", |s| {
        s["servingVersion"] == 1 && s["phase"] == "Promoted"
    })
    .await;
    assert_eq!(condition(&s, "Ready").unwrap()["status"], "True", "{s}");
    assert_eq!(s["endpoint"], format!("http://points.{ns}.svc:8080"));
    let target = ciclo_e2e::load::serving_target(&pods, "points", 2).await;
    let http = reqwest::Client::new();
    let body = points_request(&[(0.9, 0.9), (0.05, 0.1)]);
    let answer = ciclo_e2e::load::infer(&http, &target, "points", &body).await;
    assert_eq!(
        ciclo_e2e::load::output(&answer, "predict")["data"],
        json!([1, 0]),
        "a learnt boundary: {answer}"
    );
    let v1 = http
        .post(format!("{target}/v1/models/points:predict"))
        .json(&json!({"instances": [[0.9, 0.9]]}))
        .send()
        .await
        .unwrap();
    assert!(v1.status().is_success(), "{v1:?}");
    let bad = http
        .post(format!("{target}/v2/models/points/infer"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    // More data → version 2, blessed → canary under steady load → promoted, nothing failed.
    let load = steady_load(&pods);
    let v2 = w
        .land(
            "batch-2.csv",
            &points(12, 300, 1000),
            "2026-11-26T13:00:00Z",
        )
        .await;
    assert_eq!(v2["verdict"], "Accepted", "{v2}");
    let s = wait_status(&deployments, "points", "version 2 promoted", |s| {
        s["servingVersion"] == 2 && s["canaryVersion"].is_null()
    })
    .await;
    load.stop_after_rollout(1, 2).await;
    assert_eq!(s["phase"], "Promoted");
    assert_eq!(s["history"][0]["result"], "Promoted", "{s}");
    assert_eq!(s["history"][0]["from"], 1, "{s}");
    let versions = &w.versions;
    let deployed_by =
        |name: &'static str| async move { status(versions, name).await["deployedBy"].clone() };
    assert_eq!(deployed_by("points-2").await, json!(["points"]));
    assert!(
        deployed_by("points-1")
            .await
            .as_array()
            .is_none_or(Vec::is_empty)
    );

    // A broken version 3 is blessed and tried: its pods never serve, so it is rolled back
    // while version 2 keeps serving.
    apply(&ns, BROKEN_TRAINING_RUN);
    let s = wait_status(&deployments, "points", "version 3 rolled back", |s| {
        s["phase"] == "RolledBack"
    })
    .await;
    assert_eq!(s["servingVersion"], 2, "{s}");
    let last = &s["history"][0];
    assert_eq!(
        (last["version"].as_i64(), last["result"].as_str()),
        (Some(3), Some("RolledBack")),
        "{s}"
    );
    assert!(
        last["reason"].as_str().unwrap().contains("restarted"),
        "the reason is in the status: {s}"
    );
    assert_eq!(condition(&s, "Stalled").unwrap()["reason"], "RolledBack");
    let still = http
        .post(format!(
            "{}/v2/models/points/infer",
            ciclo_e2e::load::routed_target(&pods, "points", TIMEOUT)
                .await
                .unwrap()
        ))
        .json(&points_request(&[(0.9, 0.9)]))
        .send()
        .await
        .unwrap();
    assert!(still.status().is_success());
    let body: Value = still.json().await.unwrap();
    assert_eq!(body["model_version"], "2", "{body}");
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_leader_killed_mid_canary_resumes_the_same_step_and_promotes() {
    let w = start("serving-crash", &points(21, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, POINTS_TRAINING_RUN);
    apply(&ns, &DEPLOYMENT.replace("pause: 4s", "pause: 8s"));
    let deployments = ciclo(&w.client, &ns, "ModelDeployment");
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &ns);
    wait_status(&deployments, "points", "version 1 serving", |s| {
        s["servingVersion"] == 1
    })
    .await;
    wait_for(TIMEOUT, "two ready serving pods", || async {
        Ok(endpoints(&pods).await.len() == 2)
    })
    .await
    .unwrap();
    let load = steady_load(&pods);
    w.land(
        "batch-2.csv",
        &points(22, 300, 1000),
        "2026-11-26T14:00:00Z",
    )
    .await;
    let s = wait_status(&deployments, "points", "the canary step started", |s| {
        s["stepStarted"].is_string()
    })
    .await;
    let step_started = s["stepStarted"].clone();
    ciclo_e2e::operator::kill_leader(&w.client).await;

    // Until the promotion, the step is the one the killed leader started.
    let seen = Arc::new(Mutex::new(vec![step_started.clone()]));
    wait_for(TIMEOUT, "version 2 promoted by the next leader", || async {
        let s = status(&deployments, "points").await;
        let mut seen = seen.lock().unwrap();
        if s["stepStarted"].is_string() && !seen.contains(&s["stepStarted"]) {
            seen.push(s["stepStarted"].clone());
        }
        Ok(s["servingVersion"] == 2 && s["canaryVersion"].is_null())
    })
    .await
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    let load = load.stop().await;
    println!("requests across the leader's death: {load:?}");
    assert_eq!(seen, vec![step_started], "the step was not started again");
    assert!(load.failed.is_empty(), "{load:?}");
    let s = status(&deployments, "points").await;
    let results: Vec<_> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["version"].as_i64().unwrap(),
                h["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![(2, "Promoted".to_string()), (1, "Promoted".to_string())],
        "one rollout, recorded once: {s}"
    );
}

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: points}
spec:
  rules:
  - backendRefs:
    - {name: points-stable, port: 8080, weight: 100}
    - {name: points-canary, port: 8080, weight: 0}
"#;

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn with_an_http_route_the_canary_weight_is_set_on_its_backends() {
    let w = start("serving-route", &points(31, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, ROUTE);
    apply(&ns, POINTS_TRAINING_RUN);
    apply(
        &ns,
        &DEPLOYMENT.replace("pause: 4s", "pause: 6s").replace(
            "  replicas: 2",
            "  replicas: 2\n  trafficRouting: {httpRoute: points}",
        ),
    );
    let deployments = ciclo(&w.client, &ns, "ModelDeployment");
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &ns);
    let routes = Api::<kube::api::DynamicObject>::namespaced_with(
        w.client.clone(),
        &ns,
        &kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        )),
    );
    let weights = || async {
        let r = routes.get("points").await.unwrap();
        let b = &r.data["spec"]["rules"][0]["backendRefs"];
        (b[0]["weight"].as_i64(), b[1]["weight"].as_i64())
    };
    wait_status(&deployments, "points", "version 1 serving", |s| {
        s["servingVersion"] == 1
    })
    .await;
    assert_eq!(weights().await, (Some(100), Some(0)));
    let selects = |name: &'static str| {
        let services =
            Api::<k8s_openapi::api::core::v1::Service>::namespaced(w.client.clone(), &ns);
        async move {
            services
                .get(name)
                .await
                .unwrap()
                .spec
                .unwrap()
                .selector
                .unwrap()["ciclo.dev/version"]
                .clone()
        }
    };
    assert_eq!(selects("points-stable").await, "1");

    // Traffic so the step can be judged, then version 2 through the route.
    wait_for(TIMEOUT, "two ready serving pods", || async {
        Ok(endpoints(&pods).await.len() == 2)
    })
    .await
    .unwrap();
    let load = steady_load(&pods);
    w.land(
        "batch-2.csv",
        &points(32, 300, 1000),
        "2026-11-26T15:00:00Z",
    )
    .await;
    wait_status(&deployments, "points", "the canary at weight 50", |s| {
        s["canaryWeight"] == 50
    })
    .await;
    assert_eq!(
        weights().await,
        (Some(50), Some(50)),
        "the step's weight is on the route"
    );
    assert_eq!(selects("points-canary").await, "2");
    wait_status(&deployments, "points", "version 2 promoted", |s| {
        s["servingVersion"] == 2 && s["canaryVersion"].is_null()
    })
    .await;
    let load = load.stop().await;
    assert!(load.failed.is_empty(), "{load:?}");
    assert_eq!(weights().await, (Some(100), Some(0)));
    assert_eq!(selects("points-stable").await, "2");
}

/// Waits until the deployment `points` serves version 1, then lands the data of version 2
/// (rows from `seed`); returns the ModelDeployments.
async fn version_2_lands_while_1_serves(w: &World, seed: u64) -> Api<kube::api::DynamicObject> {
    let deployments = ciclo(&w.client, &w.ns.name, "ModelDeployment");
    wait_status(&deployments, "points", "version 1 serving", |s| {
        s["servingVersion"] == 1
    })
    .await;
    w.land(
        "batch-2.csv",
        &points(seed, 300, 1000),
        "2026-11-26T15:00:00Z",
    )
    .await;
    deployments
}

/// A change freeze on the namespace's routes, as a platform team would set one with a
/// ValidatingAdmissionPolicy: every update of an HTTPRoute's spec is refused (422).
fn route_freeze(ns: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {ns}-route-freeze}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {{apiGroups: [gateway.networking.k8s.io], apiVersions: ["*"], operations: [UPDATE], resources: [httproutes]}}
  validations:
  - expression: object.spec == oldObject.spec
    message: routes are frozen during the change freeze
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {ns}-route-freeze}}
spec:
  policyName: {ns}-route-freeze
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#
    )
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_route_the_api_server_will_not_reweight_stalls_the_deployment_in_its_words() {
    let w = start("serving-route-frozen", &points(33, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, ROUTE);
    let freeze = route_freeze(&ns);
    apply(&ns, &freeze);
    apply(&ns, POINTS_TRAINING_RUN);
    apply(
        &ns,
        &DEPLOYMENT.replace(
            "  replicas: 2",
            "  replicas: 2\n  trafficRouting: {httpRoute: points}",
        ),
    );
    let deployments = version_2_lands_while_1_serves(&w, 34).await;
    // The canary's step needs weight 50 on the route; the freeze refuses it.
    let s = wait_status(&deployments, "points", "stalled on the route", |s| {
        condition(s, "Stalled").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let stalled = condition(&s, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "HTTPRouteNotUsable", "{s}");
    let message = stalled["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.trafficRouting.httpRoute: the API server refused")
            && message.contains("routes are frozen during the change freeze"),
        "the API server's words: {message}"
    );
    ciclo_e2e::wait_event(&w.client, &ns, "HTTPRouteNotUsable", "spec.trafficRouting")
        .await
        .expect("a Warning Event says so");
    let (ok, _, err) = ciclo_e2e::kubectl(&["delete", "-f", "-"], Some(&freeze));
    assert!(ok, "the freeze is lifted: {err}");
}

/// A user's serving runtime (the tests' Python image, whose entrypoint is `python3`) that is
/// healthy and ready but serves no Prometheus counters: its `/metrics` answers 404.
const RUNTIME_WITHOUT_COUNTERS: &str = r#"
  runtime:
    image: localhost/ciclo-e2e/python:3.11
    args:
    - -c
    - |
      import http.server, os
      class Handler(http.server.BaseHTTPRequestHandler):
          def do_GET(self):
              self.send_response(200 if self.path.startswith("/v2/health/") else 404)
              self.end_headers()
          def log_message(self, *args):
              pass
      address = (os.environ["CICLO_POD_IP"], int(os.environ["CICLO_PORT"]))
      http.server.ThreadingHTTPServer(address, Handler).serve_forever()
"#;

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_canary_whose_counters_cannot_be_read_waits_and_says_so() {
    let w = start("serving-no-counters", &points(35, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, POINTS_TRAINING_RUN);
    apply(
        &ns,
        &format!("{}{RUNTIME_WITHOUT_COUNTERS}", DEPLOYMENT.trim_end()),
    );
    let deployments = version_2_lands_while_1_serves(&w, 36).await;
    let s = wait_status(
        &deployments,
        "points",
        "the step waiting for counters",
        |s| condition(s, "Ready").is_some_and(|c| c["reason"] == "MetricsNotReadable"),
    )
    .await;
    let message = condition(&s, "Ready").unwrap()["message"].as_str().unwrap();
    assert!(
        message.contains("version 2") && message.contains("/metrics"),
        "names the version and what could not be read: {message}"
    );
    assert_eq!(s["servingVersion"], 1, "version 1 serves on: {s}");
    assert_eq!(s["canaryVersion"], 2, "{s}");
}

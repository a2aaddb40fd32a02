//! `ciclo ui` after the demo's scenario, looked at in a real browser: every page loads and
//! shows what the objects say (one chart point per model version, one lineage edge per
//! link, one histogram bar per bin, the canary's steps), links lead where they say, a status
//! change shows without a reload, and a user who may not read ModelVersions sees that part
//! say "forbidden" while the rest shows. Each page is saved as a screenshot.

use super::{Browser, Ui, artifacts};
use ciclo_demo::cycle::{Cycle, NAME};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// What the store settings a workload gets are, for the view's profiles.
fn store_env() -> Vec<(&'static str, String)> {
    vec![("CICLO_ARTIFACTS_AWS_ENDPOINT", ciclo_e2e::s3::endpoint())]
}

pub async fn tour(cycle: &Cycle) {
    let ns = cycle.ns.as_str();
    let shots = artifacts();
    let ui = Ui::start(ns, &ciclo_e2e::kubeconfig(), &store_env());
    let browser = Browser::start().await;
    let b = &browser;
    let c = &b.client;

    // The printed address: the token becomes a cookie and leaves the address bar.
    c.goto(&ui.url).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().as_str(), ui.at("/"));
    b.until("the overview lists the datasets", WAIT, || async {
        b.count("#datasets tbody tr").await >= 2
    })
    .await;
    for name in [NAME, "wdbc-production"] {
        assert_eq!(
            b.count(&format!("#datasets tr[data-name='{ns}/{name}']"))
                .await,
            1
        );
    }
    assert_eq!(
        b.count("#modelversions tbody tr").await,
        items(&cycle.versions).await.len(),
        "a row per model version"
    );
    b.screenshot(&shots, "overview").await;

    // The model: one point per version in the chart of the metric each reports.
    let versions = items(&cycle.versions).await;
    b.click(&format!("#modeldeployments a[href='/models/{ns}/{NAME}']"))
        .await;
    b.until("the model page", WAIT, || async {
        c.current_url().await.unwrap().as_str() == ui.at(&format!("/models/{ns}/{NAME}"))
    })
    .await;
    let reporting = |metric: &str| {
        versions
            .iter()
            .filter(|mv| !mv["spec"]["lineage"]["metrics"][metric].is_null())
            .count()
    };
    assert_eq!(reporting("roc_auc"), versions.len());
    assert_eq!(
        b.count("svg[aria-label^='roc_auc'] circle.point").await,
        reporting("roc_auc"),
        "one point per version"
    );
    assert_eq!(
        b.count("circle.point.served").await,
        b.count("figure.chart").await,
        "the serving version is ringed in each chart"
    );
    assert_eq!(b.count("#versions tbody tr").await, versions.len());
    b.screenshot(&shots, "model").await;

    // The lineage: one edge per link the objects state.
    c.goto(&ui.at("/lineage")).await.unwrap();
    let deployments = items(&cycle.deployments).await;
    let runs: BTreeSet<(String, String)> = versions
        .iter()
        .map(|mv| {
            let l = &mv["spec"]["lineage"];
            (l["dataset"]["version"].to_string(), l["runId"].to_string())
        })
        .collect();
    let served = versions
        .iter()
        .flat_map(|mv| deployments.iter().map(move |md| (mv, md)))
        .filter(|(mv, md)| {
            md["spec"]["model"]["name"] == mv["spec"]["model"]
                && [
                    &md["status"]["servingVersion"],
                    &md["status"]["canaryVersion"],
                ]
                .contains(&&mv["spec"]["version"])
        })
        .count();
    assert!(served >= 1, "the deployment serves a version");
    b.until("the lineage graph", WAIT, || async {
        b.count("line.edge").await == runs.len() + versions.len() + served
    })
    .await;
    // The loop's return: the deployment → the dataset version made of its capture.
    let captured = items(&cycle.datasets)
        .await
        .iter()
        .flat_map(|d| {
            d["status"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|v| !v["capturedFrom"].is_null())
        .count();
    assert!(
        captured >= 1,
        "the demo's third iteration trains on captured traffic"
    );
    assert_eq!(b.count("path.edge.capture").await, captured);
    b.screenshot(&shots, "lineage").await;

    // A dataset version's node leads to the dataset's page: a bar per bin of each column's
    // histogram, as the check's profile.json has them.
    let dataset = cycle.datasets.get(NAME).await.unwrap();
    let latest = dataset.data["status"]["latest"].clone();
    let id = latest["id"].as_str().unwrap();
    let short = &id[..12];
    b.click(&format!("a[href='/datasets/{ns}/{NAME}?version={short}']"))
        .await;
    b.until("the dataset page", WAIT, || async {
        b.count("#profile div.column").await > 0
    })
    .await;
    let profile = profile_json(latest["location"].as_str().unwrap()).await;
    let column = profile["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mean_radius")
        .unwrap();
    let bins = column["histogram"]["counts"].as_array().unwrap().len();
    assert!(bins > 1, "{column}");
    assert_eq!(
        b.count("div.column[data-column='mean_radius'] rect.bar")
            .await,
        bins,
        "one bar per bin"
    );
    let recorded = dataset.data["status"]["versions"].as_array().unwrap().len();
    assert!(b.count("#versions tbody tr").await >= recorded);
    assert!(b.text("#versions").await.contains("Rejected") || recorded < 2);
    b.screenshot(&shots, "dataset").await;

    // Drift from an older version: the link keeps the version shown and names the base.
    if b.count("#versions a[href*='base=']").await > 0 {
        b.click("#versions a[href*='base=']").await;
        b.until("the drift table", WAIT, || async {
            b.count("#drift tr[data-column]").await > 0
        })
        .await;
        b.screenshot(&shots, "dataset-drift").await;
    }

    // The deployment: its canary's steps and the rollouts' timeline.
    let md = deployments
        .iter()
        .find(|md| md["metadata"]["name"] == NAME)
        .unwrap();
    c.goto(&ui.at(&format!("/deployments/{ns}/{NAME}")))
        .await
        .unwrap();
    b.until("the deployment page", WAIT, || async {
        b.count("#rollout").await == 1
    })
    .await;
    let steps = md["spec"]["strategy"]["steps"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(steps > 0, "the demo rolls out by canary: {md}");
    assert_eq!(b.count("li.step").await, steps);
    assert!(
        b.count("li.event[data-reason='Promoted']").await >= 1,
        "promotions are in the timeline"
    );
    assert!(b.count("li.event[data-reason='StepPassed']").await >= 1);
    assert_eq!(
        b.count("#history tbody tr").await,
        md["status"]["history"].as_array().map_or(0, Vec::len)
    );
    // Its serving pods' traffic, read through the API server's proxy: a row per running pod
    // of the version that serves, and, from the page's second reading on, a rate.
    let serving = md["status"]["servingVersion"].to_string();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(cycle.client.clone(), ns);
    let running = pods
        .list(&ListParams::default().labels(&format!("ciclo.dev/deployment={NAME}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .count();
    assert!(running >= 1);
    // Under a steady load (the demo's unseen rows), some pod answers at a rate above 0.
    let load = cycle.start_load(ciclo_demo::data::Rows::parse(&ciclo_demo::data::batch(
        "batch-3.csv",
    )));
    let rates = || async {
        let mut rates = Vec::new();
        for cell in c
            .find_all(fantoccini::Locator::Css(
                "#traffic tbody tr td:nth-child(3)",
            ))
            .await
            .unwrap()
        {
            rates.extend(cell.text().await.unwrap().trim().parse::<f64>().ok());
        }
        rates
    };
    b.until(
        "a traffic row per serving pod, with a rate above 0 under load",
        WAIT,
        || async {
            b.count("#traffic tr[data-pod]").await == running
                && b.count(&format!("#traffic tr[data-version='{serving}']"))
                    .await
                    == running
                && rates().await.iter().any(|r| *r > 0.0)
        },
    )
    .await;
    b.screenshot(&shots, "deployment").await;
    let load = load.stop().await;
    assert!(load.failed.is_empty(), "{load:?}");

    // Live: a new Dataset's status shows on the open overview, with no reload (a value the
    // page's script set survives).
    c.goto(&ui.at("/")).await.unwrap();
    b.until("the overview", WAIT, || async {
        b.count("#datasets tbody tr").await >= 2
    })
    .await;
    c.execute("window.stillThisPage = true;", vec![])
        .await
        .unwrap();
    ciclo_e2e::resources::apply(
        ns,
        &ciclo_e2e::resources::s3_dataset(
            "ui-live",
            &cycle.bucket,
            &ciclo_e2e::s3::endpoint(),
            "nothing-here/*.csv",
            "",
        ),
    );
    let row = format!("#datasets tr[data-name='{ns}/ui-live']");
    // Its row comes first as not observed; then the operator's status shows in it.
    b.until("the new Dataset's status, live", WAIT, || async {
        b.count(&row).await == 1 && {
            let reason = b.text(&format!("{row} td:nth-child(3)")).await;
            !reason.trim().is_empty() && reason.trim() != "NotObserved"
        }
    })
    .await;
    let still = c
        .execute("return window.stillThisPage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(still, Value::Bool(true), "the page was not reloaded");
    b.screenshot(&shots, "overview-live").await;
    drop(ui);

    // A user without get on ModelVersions.
    let limited = limited_user(cycle).await;
    let ui = Ui::start(ns, limited.path(), &store_env());
    c.goto(&ui.url).await.unwrap();
    b.until("the limited user's overview", WAIT, || async {
        b.count("#modelversions p.forbidden").await == 1 && b.count("#datasets tbody tr").await >= 2
    })
    .await;
    assert!(
        b.text("#modelversions p.forbidden")
            .await
            .contains("Forbidden")
    );
    c.goto(&ui.at(&format!("/models/{ns}/{NAME}")))
        .await
        .unwrap();
    b.until("the limited user's model page", WAIT, || async {
        b.count("main p.forbidden").await == 1
    })
    .await;
    b.screenshot(&shots, "forbidden").await;
    c.goto(&ui.at(&format!("/deployments/{ns}/{NAME}")))
        .await
        .unwrap();
    b.until("the limited user's deployment page", WAIT, || async {
        b.count("#traffic p.forbidden").await == 1 && b.count("li.step").await > 0
    })
    .await;
    drop(ui);
    browser.close().await;
}

async fn items(api: &Api<kube::api::DynamicObject>) -> Vec<Value> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

/// A version's profile.json, read straight from the S3 server (path style, unsigned).
async fn profile_json(location: &str) -> Value {
    let path = location
        .strip_prefix("s3://")
        .unwrap()
        .trim_end_matches('/');
    let url = format!("{}/{path}/profile.json", ciclo_e2e::s3::endpoint());
    reqwest::get(&url).await.unwrap().json().await.unwrap()
}

/// A kubeconfig for a ServiceAccount that may read Datasets, TrainingRuns,
/// ModelDeployments and Events in the namespace, but not ModelVersions.
async fn limited_user(cycle: &Cycle) -> tempfile::NamedTempFile {
    let ns = &cycle.ns;
    ciclo_e2e::resources::apply(
        ns,
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: no-model-versions}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: no-model-versions}
rules:
- apiGroups: [ciclo.dev]
  resources: [datasets, trainingruns, modeldeployments]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: no-model-versions}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: no-model-versions}
subjects:
- {kind: ServiceAccount, name: no-model-versions}
"#,
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(cycle.client.clone(), ns);
    let request: k8s_openapi::api::authentication::v1::TokenRequest = serde_json::from_value(
        serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}}),
    )
    .unwrap();
    let token = accounts
        .create_token_request("no-model-versions", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("a token for the ServiceAccount");
    // The cluster's own entry (server, CA), with the account's token as the user.
    let config = kube::config::Kubeconfig::read_from(ciclo_e2e::kubeconfig()).unwrap();
    let current = config.current_context.clone().unwrap();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .unwrap()
        .cluster
        .clone();
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .unwrap();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "no-model-versions", "user": {"token": token}}],
        "contexts": [{"name": "limited", "context": {"cluster": cluster_name, "user": "no-model-versions", "namespace": ns}}],
        "current-context": "limited",
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_yaml::to_string(&config).unwrap()).unwrap();
    file
}

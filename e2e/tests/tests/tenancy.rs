//! Two teams on one cluster, each with its own artifact store: a bucket of its own in the
//! tenants' S3 store (which refuses unsigned requests), its own keys — limited to that bucket
//! by an S3 policy document — in a Secret of its namespace, and a ConfigMap
//! `ciclo-artifact-store` naming both. Each team's dataset versions, models and registry
//! records (the operator's, written with the team's keys) land in its own bucket, none in the
//! operator's shared one, and a training Job of team A, running the
//! team's own code with the keys ciclo gives it, is refused team B's data by the store.

use ciclo_e2e::images::SKLEARN_TRAINER;
use ciclo_e2e::resources::{TIMEOUT, apply, ciclo, condition, restricted_namespace, wait_status};
use ciclo_e2e::tenants::{self, Identity, Tenants, team_store};
use ciclo_e2e::world::{POINTS_SCHEMA, POINTS_TRAINING_RUN, points};
use ciclo_e2e::{TestNamespace, wait_for};

/// The Dataset `points` over `uri`, read with the team's own keys.
fn dataset(uri: &str) -> String {
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {{name: points}}
spec:
  source:
    uri: {uri}
    endpoint: {endpoint}
    region: us-east-1
    forcePathStyle: true
    credentialsSecretRef: {{name: team-store}}
  interval: 1h
  schema:
{POINTS_SCHEMA}"#,
        endpoint = tenants::endpoint()
    )
}

/// Team code that reads, with the artifact store keys its Job was given, first its own
/// dataset version's manifest, then the object `params.target`, and reports both outcomes as
/// a failed run (exit 1: so the test reads them in the TrainingRun's status).
const PEEK: &str = r#"
import json, os, sys
sys.path.insert(0, "/app")
from train import open_store, read_object

def read(uri):
    store, key = open_store(uri, "CICLO_ARTIFACTS_")
    return read_object(store, key)

own = read(os.environ["CICLO_DATASET_MANIFEST"])
target = json.loads(os.environ["CICLO_PARAMS"])["target"]
try:
    theirs = "read %d bytes" % len(read(target))
except Exception as e:
    theirs = "refused: %s: %s" % (type(e).__name__, e)
message = "own manifest: read %d bytes; the other team's: %s" % (len(own), theirs)
print(message)
with open("/dev/termination-log", "w") as f:
    json.dump({"outcome": "Failed",
               "failure": {"reason": "DatasetUnavailable", "message": message[:700]}}, f)
sys.exit(1)
"#;

fn peek_run(target: &str) -> String {
    let script = serde_json::to_string(PEEK).unwrap();
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: peek}}
spec:
  dataset: {{name: points}}
  model: {{name: peek}}
  image: {SKLEARN_TRAINER}
  command: [python3, -c, {script}]
  params: {{target: "{target}"}}
  backoffLimit: 0
"#
    )
}

/// A team's namespace with its data, the Dataset and TrainingRun `points`, and its store —
/// first, with `typo`, a store ConfigMap with a misspelt key, which stalls the Dataset naming
/// the key until the ConfigMap is mended.
async fn team(
    test: &str,
    who: &Identity,
    admin: &Identity,
    seed: u64,
    typo: bool,
) -> TestNamespace {
    let (client, ns) = restricted_namespace(test).await;
    let store = tenants::bucket(admin, &who.bucket);
    tenants::put(
        &store,
        &format!("{}/source/batch-1.csv", ns.name),
        &points(seed, 60, 0),
    )
    .await;
    let good = team_store(who);
    if typo {
        apply(&ns.name, &good.replace("secretName:", "secretname:"));
    } else {
        apply(&ns.name, &good);
    }
    apply(
        &ns.name,
        &dataset(&format!("s3://{}/{}/source/", who.bucket, ns.name)),
    );
    apply(&ns.name, POINTS_TRAINING_RUN);
    if typo {
        let datasets = ciclo(&client, &ns.name, "Dataset");
        let s = wait_status(&datasets, "points", "InvalidArtifactStore", |s| {
            condition(s, "Stalled").is_some_and(|c| c["reason"] == "InvalidArtifactStore")
        })
        .await;
        let message = condition(&s, "Stalled").unwrap()["message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains(&format!("ConfigMap {}/ciclo-artifact-store", ns.name))
                && message.contains("unknown key \"secretname\""),
            "{message}"
        );
        // Mended: the ConfigMap's change wakes the Dataset (checked hourly otherwise).
        apply(&ns.name, &good);
    }
    ns
}

#[tokio::test]
#[ignore = "needs the local cluster: make cluster-up objectstore-up deploy example-images"]
async fn each_team_keeps_its_versions_and_models_in_its_own_store_and_cannot_read_the_others() {
    let tenants = Tenants::load();
    let client = ciclo_e2e::client().await.unwrap();
    let a = team("tenancy-a", &tenants.team_a, &tenants.admin, 11, false).await;
    let b = team("tenancy-b", &tenants.team_b, &tenants.admin, 22, true).await;

    // Each team's cycle runs on its own store: the dataset version's files and the model are
    // written under `<bucket>/ciclo/<namespace>/` with the team's keys.
    let mut locations = Vec::new();
    for (ns, who) in [(&a, &tenants.team_a), (&b, &tenants.team_b)] {
        let datasets = ciclo(&client, &ns.name, "Dataset");
        let s = wait_status(&datasets, "points", "a version in the team's store", |s| {
            s["latest"]["id"].is_string()
        })
        .await;
        let location = s["latest"]["location"].as_str().unwrap().to_string();
        let root = format!("s3://{}/ciclo/{}/", who.bucket, ns.name);
        assert!(location.starts_with(&root), "{location} under {root}");
        let versions = ciclo(&client, &ns.name, "ModelVersion");
        wait_for(TIMEOUT, "points-1 registered", || async {
            Ok(versions.get_opt("points-1").await?.is_some())
        })
        .await
        .unwrap();
        let mv = versions.get("points-1").await.unwrap().data;
        let model = mv["spec"]["artifact"]["uri"].as_str().unwrap();
        assert!(model.starts_with(&root), "{model} under {root}");
        // The operator writes the registry's record there too, with the team's own keys.
        let record = format!("{root}registry/models/points/1.json");
        wait_for(TIMEOUT, "points-1 recorded", || async {
            let mv = versions.get("points-1").await?.data;
            Ok(mv["status"]["record"] == record.as_str())
        })
        .await
        .unwrap();
        // What ciclo wrote is there, readable with the team's own keys.
        let own = tenants::bucket(who, &who.bucket);
        let keys = tenants::list(&own, &format!("ciclo/{}", ns.name))
            .await
            .unwrap();
        assert!(
            keys.iter().any(|k| k.ends_with("/manifest.json"))
                && keys.iter().any(|k| k.contains("/models/points/"))
                && keys
                    .iter()
                    .any(|k| k.ends_with("/registry/models/points/1.json")),
            "{keys:?}"
        );
        // Nothing of the namespace went to the operator's shared store.
        let shared = ciclo_e2e::s3::list(ciclo_e2e::s3::ARTIFACTS, &format!("{}/", ns.name)).await;
        assert!(shared.is_empty(), "{shared:?}");
        locations.push(location);
    }

    // The store itself refuses team A's keys on team B's bucket, and anyone without keys.
    let a_on_b = tenants::bucket(&tenants.team_a, &tenants.team_b.bucket);
    let refused = tenants::list(&a_on_b, "ciclo")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("403"), "{refused}");
    let anonymous = reqwest::get(format!(
        "{}/{}?list-type=2",
        tenants::endpoint(),
        tenants.team_b.bucket
    ))
    .await
    .unwrap();
    assert_eq!(anonymous.status(), 403);

    if ciclo_e2e::on_process_node(&client).await {
        return; // the team's image runs on the kubelet node only
    }

    // Team A's own code, given team A's keys by ciclo, reads its own version and is refused
    // team B's.
    let b_manifest = format!("{}/manifest.json", locations[1]);
    apply(&a.name, &peek_run(&b_manifest));
    let runs = ciclo(&client, &a.name, "TrainingRun");
    let s = wait_status(&runs, "peek", "the peek run's end", |s| {
        s["runs"][0]["phase"] == "Failed"
    })
    .await;
    let failure = s["runs"][0]["failure"].as_str().unwrap_or_default();
    println!("team A's run: {failure}");
    assert!(
        failure.contains("own manifest: read ") && failure.contains("the other team's: refused"),
        "{failure}"
    );
    assert!(
        [
            "403",
            "Forbidden",
            "Access Denied",
            "AccessDenied",
            "PermissionDenied"
        ]
        .iter()
        .any(|w| failure.contains(w)),
        "{failure}"
    );
    assert_eq!(
        condition(&s, "Stalled").unwrap()["reason"],
        "RunFailed",
        "{s}"
    );
}

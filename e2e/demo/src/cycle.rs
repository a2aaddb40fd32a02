//! One team's ML cycle on a cluster, step by step: the example's Dataset, TrainingRun and
//! ModelDeployment (examples/gitops/ml-team), batches landing in their bucket, and what each
//! step leads to. `make demo` narrates these steps; the e2e test asserts on them.

use crate::data::{self, Rows};
use ciclo_e2e::resources::ciclo;
use ciclo_e2e::{kubectl, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use std::time::Duration;

/// The name of the example's Dataset, TrainingRun, model and ModelDeployment.
pub const NAME: &str = "wdbc";
/// The Dataset made of the deployment's capture, and the TrainingRun over it.
pub const PRODUCTION: &str = "wdbc-production";
/// The bucket and prefix the example's Dataset reads.
const EXAMPLE_SOURCE: &str = "s3://ciclo-demo/";
const EXAMPLE_ENDPOINT: &str = "http://10.200.0.1:18333";
/// The longest any one step may take (a first training Job on a cold machine included).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// How the team's resources reach the cluster.
pub enum Source {
    /// `kubectl apply` of the example's files.
    Kubectl,
    /// Commits to the team's repository on the local git server, applied by Flux; the
    /// ModelDeployment pins its version in git and ciclo promotes by commit (`make demo
    /// GITOPS=1`).
    Git(ciclo_e2e::gitops::TeamRepo),
}

pub struct Cycle {
    pub client: kube::Client,
    pub source: Source,
    pub ns: String,
    pub bucket: String,
    pub datasets: Api<DynamicObject>,
    pub runs: Api<DynamicObject>,
    pub versions: Api<DynamicObject>,
    pub deployments: Api<DynamicObject>,
    pub pods: Api<Pod>,
}

impl Cycle {
    /// The cycle in namespace `ns`, its data in `bucket` (which must exist).
    pub fn new(client: kube::Client, ns: &str, bucket: &str) -> Self {
        Self {
            datasets: ciclo(&client, ns, "Dataset"),
            runs: ciclo(&client, ns, "TrainingRun"),
            versions: ciclo(&client, ns, "ModelVersion"),
            deployments: ciclo(&client, ns, "ModelDeployment"),
            pods: Api::namespaced(client.clone(), ns),
            source: Source::Kubectl,
            client,
            ns: ns.into(),
            bucket: bucket.into(),
        }
    }

    /// The same cycle driven by commits: the example goes into a new repository `<ns>` on
    /// the local git server (make flux-up), which Flux applies.
    pub fn through_git(mut self) -> Self {
        self.source = Source::Git(ciclo_e2e::gitops::TeamRepo::new(&self.ns));
        self
    }

    /// Applies the example's resources, as committed, into this namespace; only the bucket
    /// (and the S3 port, when moved) differ from the committed files. Through git, they are
    /// committed to the team's repository instead, with the ModelDeployment pinning version
    /// 1 and promoting by commit, and Flux applies them; returns what was done.
    pub async fn apply_example(&self) -> anyhow::Result<String> {
        let dir = ciclo_e2e::repo_root().join("examples/gitops/ml-team");
        let files = [
            "dataset.yaml",
            "trainingrun.yaml",
            "modeldeployment.yaml",
            "production-dataset.yaml",
            "production-trainingrun.yaml",
        ];
        let mut committed = Vec::new();
        for file in files {
            let yaml = std::fs::read_to_string(dir.join(file))?
                .replace(EXAMPLE_SOURCE, &format!("s3://{}/", self.bucket))
                .replace(EXAMPLE_ENDPOINT, &ciclo_e2e::s3::endpoint());
            match &self.source {
                Source::Kubectl => {
                    let (ok, _, err) = kubectl(&["apply", "-n", &self.ns, "-f", "-"], Some(&yaml));
                    anyhow::ensure!(ok, "kubectl apply {file}: {err}");
                }
                Source::Git(repo) => {
                    let path = format!("ml-team/{file}");
                    let yaml = if file == "modeldeployment.yaml" {
                        write_back_mode(&yaml, &repo.url(), &path)?
                    } else {
                        yaml
                    };
                    repo.write(&path, &yaml);
                    committed.push(file);
                }
            }
        }
        let Source::Git(repo) = &self.source else {
            return Ok(format!(
                "applied examples/gitops/ml-team in namespace {}: Dataset, TrainingRun and ModelDeployment `{NAME}`",
                self.ns
            ));
        };
        // The example's kustomization.yaml also makes the namespace, which the demo made.
        repo.write(
            "ml-team/kustomization.yaml",
            &format!("resources: [{}]\n", committed.join(", ")),
        );
        let commit = repo.commit("ml-team: the data, how to train on it, and serving by commit");
        let (ok, _, err) = kubectl(
            &["apply", "-n", &self.ns, "-f", "-"],
            Some(&repo.flux_objects("./ml-team", &self.ns, "10s")),
        );
        anyhow::ensure!(ok, "kubectl apply the Flux objects: {err}");
        wait_for(STEP_TIMEOUT, "Flux to apply the team's commit", || async {
            Ok(self.datasets.get_opt(NAME).await?.is_some()
                && self.deployments.get_opt(NAME).await?.is_some())
        })
        .await?;
        Ok(format!(
            "committed examples/gitops/ml-team to {} ({}), the ModelDeployment pinning version 1 with gitWriteBack; Flux's GitRepository and Kustomization `team` in namespace {} apply it",
            repo.url(),
            &commit[..12],
            self.ns
        ))
    }

    /// Puts `file` of the example's data into the bucket and asks the Dataset to look, as a
    /// bucket notification would (the annotation); returns the request's stamp.
    pub async fn land(&self, file: &str) -> anyhow::Result<String> {
        ciclo_e2e::s3::put(&self.bucket, &format!("wdbc/{file}"), data::batch(file)).await;
        let at = jiff::Timestamp::now().to_string();
        let annotation = format!("ciclo.dev/reconcile-requested-at={at}");
        let (ok, _, err) = kubectl(
            &[
                "annotate",
                "-n",
                &self.ns,
                "--overwrite",
                "dataset",
                NAME,
                &annotation,
            ],
            None,
        );
        anyhow::ensure!(ok, "annotate: {err}");
        Ok(at)
    }

    async fn status(api: &Api<DynamicObject>, name: &str) -> Value {
        match api.get_opt(name).await {
            Ok(Some(o)) => o.data["status"].clone(),
            _ => Value::Null,
        }
    }

    /// Waits for the check asked for at `at`, and returns the version it found (accepted or
    /// rejected, with its reasons).
    pub async fn checked(&self, at: &str) -> anyhow::Result<Value> {
        wait_for(STEP_TIMEOUT, "the Dataset's check", || async {
            let s = Self::status(&self.datasets, NAME).await;
            Ok(s["lastCheck"]["requestedAt"] == at && s["versions"][0]["id"].is_string())
        })
        .await?;
        Ok(Self::status(&self.datasets, NAME).await["versions"][0].clone())
    }

    /// Waits until the TrainingRun has registered model version `n`, and returns the run.
    pub async fn trained(&self, n: i64) -> anyhow::Result<Value> {
        self.trained_by(NAME, n).await
    }

    /// Waits until the TrainingRun `run` has registered model version `n`; returns its run.
    pub async fn trained_by(&self, run: &str, n: i64) -> anyhow::Result<Value> {
        wait_for(
            STEP_TIMEOUT,
            &format!("model version {n} registered by {run}"),
            || async {
                Ok(Self::status(&self.runs, run).await["lastModelVersion"].as_i64() >= Some(n))
            },
        )
        .await?;
        Ok(Self::status(&self.runs, run).await["runs"][0].clone())
    }

    /// Asks the deployment about `rows` in requests of `batch` rows with the ids
    /// `<prefix>-<k>`, then sends their true labels to its feedback endpoint, as the team's
    /// application does once diagnoses are confirmed; returns how many were accepted.
    pub async fn labelled_requests(
        &self,
        rows: &Rows,
        batch: usize,
        prefix: &str,
    ) -> anyhow::Result<u64> {
        let target =
            ciclo_e2e::load::routed_target(&self.pods, NAME, Duration::from_secs(60)).await?;
        let http = reqwest::Client::new();
        let mut labels = Vec::new();
        for (k, start) in (0..rows.rows.len()).step_by(batch).enumerate() {
            let range = start..(start + batch).min(rows.rows.len());
            let id = format!("{prefix}-{k}");
            let mut body = rows.infer_body(range.clone());
            body["id"] = id.clone().into();
            http.post(format!("{target}/v2/models/{NAME}/infer"))
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
            for (row, (label, _)) in rows.rows[range].iter().enumerate() {
                labels.push(
                    serde_json::json!({"id": id, "row": row, "values": {"diagnosis": label}}),
                );
            }
        }
        let reply: Value = http
            .post(format!("{target}/v2/models/{NAME}/feedback"))
            .json(&serde_json::json!({ "labels": labels }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(reply["accepted"].as_u64().unwrap_or_default())
    }

    /// Waits until the deployment reports its inputs skewed, and returns its status.
    pub async fn skewed(&self) -> anyhow::Result<Value> {
        wait_for(STEP_TIMEOUT, "the skew reported", || async {
            Ok(Self::status(&self.deployments, NAME).await["skew"]["skewed"] == true)
        })
        .await?;
        Ok(Self::status(&self.deployments, NAME).await)
    }

    /// Waits until the Dataset made of the capture has an accepted version; returns it.
    pub async fn production_accepted(&self) -> anyhow::Result<Value> {
        wait_for(
            STEP_TIMEOUT,
            "an accepted version of production's rows",
            || async {
                Ok(Self::status(&self.datasets, PRODUCTION).await["latest"]["id"].is_string())
            },
        )
        .await?;
        Ok(Self::status(&self.datasets, PRODUCTION).await["latest"].clone())
    }

    /// Waits until ModelVersion `n` is judged against its gates, and returns it.
    pub async fn judged(&self, n: i64) -> anyhow::Result<Value> {
        let name = format!("{NAME}-{n}");
        wait_for(STEP_TIMEOUT, &format!("{name} judged"), || async {
            let s = Self::status(&self.versions, &name).await;
            Ok(blessed_condition(&s).is_some_and(|c| c["reason"] != "WaitingForBaseline"))
        })
        .await?;
        Ok(self.versions.get(&name).await?.data)
    }

    /// Waits until the deployment serves version `n` with all of its traffic and at least one
    /// ready pod, and returns its status.
    pub async fn serving(&self, n: i64) -> anyhow::Result<Value> {
        wait_for(STEP_TIMEOUT, &format!("version {n} serving"), || async {
            let s = Self::status(&self.deployments, NAME).await;
            Ok(s["servingVersion"] == n
                && s["phase"] == "Promoted"
                && !ciclo_e2e::load::endpoints(&self.pods, NAME)
                    .await
                    .is_empty())
        })
        .await?;
        Ok(Self::status(&self.deployments, NAME).await)
    }

    /// Waits until a rollout of version `n` is in flight (a canary step), and returns the
    /// deployment's status then.
    pub async fn canary(&self, n: i64) -> anyhow::Result<Value> {
        wait_for(
            STEP_TIMEOUT,
            &format!("the canary of version {n}"),
            || async {
                let s = Self::status(&self.deployments, NAME).await;
                Ok(s["canaryVersion"] == n || s["servingVersion"] == n)
            },
        )
        .await?;
        Ok(Self::status(&self.deployments, NAME).await)
    }

    /// The deployment's status now.
    pub async fn deployment(&self) -> Value {
        Self::status(&self.deployments, NAME).await
    }

    /// The TrainingRun's status now.
    pub async fn run_status(&self) -> Value {
        Self::status(&self.runs, NAME).await
    }

    /// How many ModelVersions the model has.
    pub async fn model_versions(&self) -> anyhow::Result<usize> {
        Ok(self.versions.list(&Default::default()).await?.items.len())
    }

    /// Asks the deployment (its Service, where Services route) about rows `range` of `rows`;
    /// returns (predicted, true) labels.
    pub async fn predict(
        &self,
        rows: &Rows,
        range: std::ops::Range<usize>,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let target =
            ciclo_e2e::load::routed_target(&self.pods, NAME, Duration::from_secs(60)).await?;
        let answer: Value = reqwest::Client::new()
            .post(format!("{target}/v2/models/{NAME}/infer"))
            .json(&rows.infer_body(range.clone()))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let predicted = data::predictions(&answer);
        anyhow::ensure!(predicted.len() == range.len(), "answer: {answer}");
        Ok(predicted
            .into_iter()
            .zip(rows.rows[range].iter().map(|(label, _)| label.clone()))
            .collect())
    }

    /// Starts a steady request load on the deployment.
    pub fn start_load(&self, rows: Rows) -> ciclo_e2e::load::Running {
        ciclo_e2e::load::start(self.pods.clone(), NAME, NAME, move |i| {
            let row = i % rows.rows.len();
            rows.infer_body(row..row + 1)
        })
    }

    /// `ciclo lineage` of model version `n`, as a user would run it.
    pub fn lineage(&self, n: i64) -> anyhow::Result<String> {
        let (ok, out, err) =
            ciclo_e2e::ciclo_cli(&["lineage", &format!("{NAME}:{n}"), "-n", &self.ns]);
        anyhow::ensure!(ok, "ciclo lineage: {err}");
        Ok(out)
    }
}

/// A ModelVersion status's `Blessed` condition.
pub fn blessed_condition(status: &Value) -> Option<&Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Blessed")
}

/// Whether a judged ModelVersion was blessed.
pub fn is_blessed(mv: &Value) -> bool {
    blessed_condition(&mv["status"]).is_some_and(|c| c["status"] == "True")
}

/// A metric of a ModelVersion, as recorded.
pub fn metric(mv: &Value, name: &str) -> Option<f64> {
    mv["spec"]["lineage"]["metrics"][name].as_f64()
}

/// The example's ModelDeployment in write-back mode: it pins version 1 (served once
/// trained), and ciclo commits each promotion to `path` of `url`.
fn write_back_mode(yaml: &str, url: &str, path: &str) -> anyhow::Result<String> {
    let floating = format!("model: {{name: {NAME}, track: LatestBlessed}}");
    anyhow::ensure!(
        yaml.contains(&floating),
        "examples/gitops/ml-team/modeldeployment.yaml no longer has {floating:?}"
    );
    let pinned = format!(
        "model:\n    name: {NAME}\n    version: 1   # moved by ciclo, a commit per promotion\n  gitWriteBack:\n    url: {url}\n    path: {path}\n    secretRef: {{name: git-credentials}}"
    );
    Ok(yaml.replace(&floating, &pinned))
}

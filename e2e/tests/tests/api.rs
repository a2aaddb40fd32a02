//! The ciclo.dev API on a real API server: the CRDs install, valid examples are accepted,
//! bad input is refused by `kubectl apply` with a message naming the field (the table in
//! docs/api.md), and `kubectl explain` shows the field docs.

use ciclo_e2e::{TestNamespace, client, kubectl, repo_root};

/// Applies `yaml` in `ns` with kubectl; returns (accepted, stderr).
fn apply(ns: &str, yaml: &str) -> (bool, String) {
    let (ok, _, err) = kubectl(&["apply", "-n", ns, "-f", "-"], Some(yaml));
    (ok, err)
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).expect("example exists")
}

const DATASET: &str = "apiVersion: ciclo.dev/v1alpha1\nkind: Dataset\nmetadata: {name: d}\n";
const TRAINING_RUN: &str =
    "apiVersion: ciclo.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: t}\n";
const DEPLOYMENT: &str =
    "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: m}\n";

/// (what, object, field the message names, message)
fn bad_objects() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let dataset = |spec: &str| format!("{DATASET}spec: {{source: {{uri: 's3://b/p'}}, {spec}}}");
    let columns = |columns: &str| dataset(&format!("schema: {{columns: [{columns}]}}"));
    let run = |spec: &str| {
        format!("{TRAINING_RUN}spec: {{dataset: {{name: d}}, model: {{name: m}}, {spec}}}")
    };
    // The built-in trainer, with more settings inside and more spec fields beside it.
    let trainer = |inside: &str, beside: &str| {
        run(&format!(
            "trainer: {{algorithm: DecisionTree, target: label{inside}}}{beside}"
        ))
    };
    let deployment = |spec: &str| format!("{DEPLOYMENT}spec: {{model: {{name: m}}, {spec}}}");
    vec![
        // Dataset
        (
            "unsupported source scheme",
            format!("{DATASET}spec: {{source: {{uri: 'ftp://host/data'}}}}"),
            "spec.source.uri",
            "uri must start with s3://, gs://, az://, file:// or https://",
        ),
        (
            "a source with neither a uri nor a capture",
            format!("{DATASET}spec: {{source: {{include: ['*.csv']}}}}"),
            "spec.source",
            "a source is either a uri or a capture, exactly one of them",
        ),
        (
            "a source with both a uri and a capture",
            format!(
                "{DATASET}spec: {{source: {{uri: 's3://b/p', capture: {{modelDeployment: web}}}}}}"
            ),
            "spec.source",
            "a source is either a uri or a capture, exactly one of them",
        ),
        (
            "a capture with another store's endpoint",
            format!(
                "{DATASET}spec: {{source: {{capture: {{modelDeployment: web}}, endpoint: 'http://minio:9000'}}}}"
            ),
            "spec.source",
            "a capture is read from ciclo's artifact store",
        ),
        (
            "a capture of no ModelDeployment name",
            format!("{DATASET}spec: {{source: {{capture: {{modelDeployment: 'Web App'}}}}}}"),
            "spec.source.capture.modelDeployment",
            "modelDeployment must be a ModelDeployment's name",
        ),
        (
            "an endpoint that is not a URL",
            format!("{DATASET}spec: {{source: {{uri: 's3://b/p', endpoint: 'minio:9000'}}}}"),
            "spec.source.endpoint",
            "endpoint must be an http:// or https:// URL",
        ),
        (
            "an empty region",
            format!("{DATASET}spec: {{source: {{uri: 's3://b/p', region: ''}}}}"),
            "spec.source.region",
            "should be at least 1 chars long",
        ),
        (
            "a credentials Secret name that is no name",
            format!(
                "{DATASET}spec: {{source: {{uri: 's3://b/p', credentialsSecretRef: {{name: 'My Keys'}}}}}}"
            ),
            "spec.source.credentialsSecretRef.name",
            "name must be a Secret's name",
        ),
        (
            "zero interval",
            dataset("interval: 0s"),
            "spec.interval",
            "interval must be at least 10s",
        ),
        (
            "interval under the floor",
            dataset("interval: 5s"),
            "spec.interval",
            "interval must be at least 10s",
        ),
        (
            "interval in milliseconds",
            dataset("interval: 1ms"),
            "spec.interval",
            "interval must be hours, minutes and seconds, largest first",
        ),
        (
            "negative interval",
            dataset("interval: -5m"),
            "spec.interval",
            "interval must be hours, minutes and seconds, largest first",
        ),
        (
            "interval in words",
            dataset("interval: 1 hour"),
            "spec.interval",
            "interval must be hours, minutes and seconds, largest first",
        ),
        (
            "duplicate column names",
            columns("{name: a, type: integer}, {name: a, type: float}"),
            "spec.schema.columns[1]",
            "Duplicate value",
        ),
        (
            "min greater than max",
            columns("{name: a, type: float, min: 10, max: 1}"),
            "spec.schema.columns[0].min",
            "min must not be greater than max",
        ),
        (
            "a range on a string column",
            columns("{name: a, type: string, min: 0}"),
            "spec.schema.columns[0].type",
            "min and max apply only to integer, float and timestamp columns",
        ),
        (
            "allowed values on a float column",
            columns("{name: a, type: float, allowedValues: ['0.5', '1.0']}"),
            "spec.schema.columns[0].allowedValues",
            "allowedValues apply only to string, integer and boolean columns",
        ),
        (
            "allowed values on a timestamp column",
            columns("{name: a, type: timestamp, allowedValues: ['2024-01-01']}"),
            "spec.schema.columns[0].allowedValues",
            "allowedValues apply only to string, integer and boolean columns",
        ),
        (
            "allowed values of a boolean column that are not booleans",
            columns("{name: a, type: boolean, allowedValues: ['yes']}"),
            "spec.schema.columns[0].allowedValues",
            "allowedValues of a boolean column must be true or false",
        ),
        (
            "a Jensen-Shannon limit above 1",
            dataset("drift: {measure: JensenShannon, maxDistance: 2}"),
            "spec.drift.maxDistance",
            "a Jensen-Shannon or L-infinity distance is at most 1",
        ),
        (
            "an L-infinity limit above 1",
            dataset("drift: {measure: LInfinity, maxDistance: 1.5}"),
            "spec.drift.maxDistance",
            "a Jensen-Shannon or L-infinity distance is at most 1",
        ),
        // TrainingRun
        (
            "workers < 1",
            run("image: trainer, workers: 0"),
            "spec.workers",
            "should be greater than or equal to 1",
        ),
        (
            "an empty image",
            run("image: ''"),
            "spec.image",
            "image must be an image reference, not empty and without spaces",
        ),
        (
            "an image with a space",
            run("image: 'trainer :1'"),
            "spec.image",
            "image must be an image reference, not empty and without spaces",
        ),
        (
            "a quantity that is no quantity",
            run("image: trainer, resources: {limits: {cpu: lots}}"),
            "spec.resources.limits[cpu]",
            "must be a quantity that is not negative, such as 500m, 2Gi or 4",
        ),
        (
            "a negative quantity",
            run("image: trainer, resources: {requests: {memory: -1Gi}}"),
            "spec.resources.requests[memory]",
            "must be a quantity that is not negative",
        ),
        (
            "a request above its limit",
            run("image: trainer, resources: {requests: {cpu: '2'}, limits: {cpu: 1500m}}"),
            "spec.resources.requests",
            "a request must not exceed the limit of the same resource",
        ),
        (
            "a resource claim",
            run("image: trainer, resources: {claims: [{name: gpu}]}"),
            "spec.resources.claims",
            "resource claims are not supported",
        ),
        (
            "a command for the built-in trainer",
            trainer("", ", command: [python, train.py]"),
            "spec.command",
            "command applies only to your own image, not to the built-in trainer",
        ),
        (
            "args for the built-in trainer",
            trainer("", ", args: [--fast]"),
            "spec.args",
            "args apply only to your own image, not to the built-in trainer",
        ),
        (
            "the target among the features",
            trainer(", features: [x1, label]", ""),
            "spec.trainer.features",
            "features must not include the target",
        ),
        (
            "a feature twice",
            trainer(", features: [x1, x1]", ""),
            "spec.trainer.features[1]",
            "Duplicate value",
        ),
        (
            "a ServiceAccount name that is no name",
            run("image: trainer, serviceAccountName: Trainer_SA"),
            "spec.serviceAccountName",
            "serviceAccountName must be a ServiceAccount's name",
        ),
        (
            "an empty schedule",
            run("image: trainer, schedule: ''"),
            "spec.schedule",
            "should be at least 1 chars long",
        ),
        (
            "an empty pinned dataset version",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d, version: ''}}, model: {{name: m}}, image: trainer}}"
            ),
            "spec.dataset.version",
            "should be at least 1 chars long",
        ),
        (
            "an empty git revision",
            run("image: trainer, git: {repository: 'https://git.example/ml', revision: ''}"),
            "spec.git.revision",
            "should be at least 1 chars long",
        ),
        (
            "gate on a metric with no direction",
            run("image: trainer, gates: [{metric: accuracy, threshold: 0.9}]"),
            "spec.gates",
            "every gate's metric must be declared in spec.metrics",
        ),
        (
            "gate with both a threshold and a baseline",
            run(
                "image: trainer, metrics: [{name: accuracy, direction: Maximize}], gates: [{metric: accuracy, threshold: 0.9, mustBeatBaseline: true}]",
            ),
            "spec.gates",
            "each gate needs exactly one of threshold (a fixed value) and mustBeatBaseline: true",
        ),
        (
            "minDelta without a baseline",
            run(
                "image: trainer, metrics: [{name: accuracy, direction: Maximize}], gates: [{metric: accuracy, threshold: 0.9, minDelta: 0.01}]",
            ),
            "spec.gates",
            "minDelta applies only to a gate with mustBeatBaseline: true",
        ),
        (
            "a primary metric with no direction",
            run("image: trainer, primaryMetric: accuracy"),
            "spec.primaryMetric",
            "primaryMetric must be declared in spec.metrics",
        ),
        (
            "pinned and floating dataset version",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d, version: abc, track: Latest}}, model: {{name: m}}, image: trainer}}"
            ),
            "spec.dataset",
            "give either version (pinned) or track (floating), not both",
        ),
        (
            "both the built-in trainer and an image",
            trainer("", ", image: trainer"),
            "spec",
            "give either trainer (the built-in trainer) or image (your own), exactly one",
        ),
        (
            "a model name that is no DNS label",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d}}, model: {{name: Iris_Model}}, image: trainer}}"
            ),
            "spec.model.name",
            "model name must be a lowercase DNS label of at most 40 characters",
        ),
        // ModelDeployment
        (
            "canary weights that do not increase",
            deployment("strategy: {type: Canary, steps: [{weight: 50}, {weight: 20}]}"),
            "spec.strategy.steps",
            "canary step weights must strictly increase",
        ),
        (
            "canary weight over 100",
            deployment("strategy: {type: Canary, steps: [{weight: 50}, {weight: 120}]}"),
            "spec.strategy.steps[1].weight",
            "should be less than or equal to 100",
        ),
        (
            "a Canary strategy without steps",
            deployment("strategy: {type: Canary}"),
            "spec.strategy",
            "a Canary strategy needs steps",
        ),
        (
            "steps with the Rolling strategy",
            deployment("strategy: {type: Rolling, steps: [{weight: 50}]}"),
            "spec.strategy.steps",
            "steps apply only to the Canary strategy",
        ),
        (
            "a pause in milliseconds",
            deployment("strategy: {type: Canary, steps: [{weight: 50, pause: 500ms}]}"),
            "spec.strategy.steps[0].pause",
            "pause must be hours, minutes and seconds, largest first",
        ),
        (
            "negative minRequests",
            deployment("analysis: {minRequests: -1}"),
            "spec.analysis.minRequests",
            "should be greater than or equal to 0",
        ),
        (
            "pinned and floating model version",
            format!("{DEPLOYMENT}spec: {{model: {{name: m, version: 1, track: LatestBlessed}}}}"),
            "spec.model",
            "give either version (pinned) or track (floating), not both",
        ),
        (
            "a model name that is no DNS label",
            format!("{DEPLOYMENT}spec: {{model: {{name: 'my model'}}}}"),
            "spec.model.name",
            "model name must be a lowercase DNS label of at most 40 characters",
        ),
        (
            "an empty runtime image",
            deployment("runtime: {image: ''}"),
            "spec.runtime.image",
            "image must be an image reference, not empty and without spaces",
        ),
        (
            "capture with a runtime of one's own",
            deployment("runtime: {image: 'mlserver:1'}, capture: {ratio: 0.5}"),
            "spec.capture",
            "capture is done by the built-in server",
        ),
        (
            "an excluded column with a comma",
            deployment("capture: {exclude: ['a,b']}"),
            "spec.capture.exclude",
            "an excluded column is a name without ','",
        ),
        (
            "hashed columns without a key",
            deployment("capture: {hash: [ssn]}"),
            "spec.capture.hashKeySecretRef",
            "hashed columns need hashKeySecretRef",
        ),
        (
            "skew with a runtime of one's own",
            deployment("runtime: {image: 'mlserver:1'}, skew: {maxDistance: 0.2}"),
            "spec.skew",
            "skew is counted by the built-in server",
        ),
        (
            "a Jensen-Shannon skew limit above 1",
            deployment("skew: {measure: JensenShannon, maxDistance: 2}"),
            "spec.skew.maxDistance",
            "a Jensen-Shannon or L-infinity distance is at most 1",
        ),
        (
            "a skew that recovers above its limit",
            deployment("skew: {maxDistance: 0.2, recoverBelow: 0.3}"),
            "spec.skew.recoverBelow",
            "recoverBelow must be under maxDistance",
        ),
        (
            "a skew window too short",
            deployment("skew: {maxDistance: 0.2, window: 5s}"),
            "spec.skew.window",
            "at least 10s",
        ),
        (
            "a capture ratio above 1",
            deployment("capture: {ratio: 2}"),
            "spec.capture.ratio",
            "should be less than or equal to 1",
        ),
        (
            "args for the built-in server",
            deployment("runtime: {args: [--verbose]}"),
            "spec.runtime.args",
            "args apply only to your own image (runtime.image), not to the built-in server",
        ),
        (
            "a command for the built-in server",
            deployment("runtime: {command: [/bin/server]}"),
            "spec.runtime.command",
            "command applies only to your own image (runtime.image), not to the built-in server",
        ),
        (
            "the built-in server on its gRPC port",
            deployment("runtime: {port: 8081}"),
            "spec.runtime.port",
            "the built-in server serves gRPC on port 8081: give runtime.port another",
        ),
        (
            "metric names for the built-in server",
            deployment("runtime: {metrics: {preset: MLServer}}"),
            "spec.runtime.metrics",
            "metrics describes your own image's metrics (runtime.image); the built-in server's are known",
        ),
        (
            "a runtime preset nobody knows",
            deployment("runtime: {image: me/server:1, metrics: {preset: TorchServe}}"),
            "spec.runtime.metrics.preset",
            "supported values: \"Ciclo\", \"MLServer\", \"Triton\", \"Custom\"",
        ),
        (
            "the Custom preset without its counters",
            deployment("runtime: {image: me/server:1, metrics: {preset: Custom}}"),
            "spec.runtime.metrics.requests",
            "the Custom preset names your runtime's request counters: give requests and errors",
        ),
        (
            "request counters without error counters",
            deployment(
                "runtime: {image: me/server:1, metrics: {requests: [{name: app_requests_total}]}}",
            ),
            "spec.runtime.metrics.errors",
            "requests and errors are given together: the error ratio is errors over requests",
        ),
        (
            "a metric name with a dash",
            deployment(
                "runtime: {image: me/server:1, metrics: {latency: {name: app-latency-seconds}}}",
            ),
            "spec.runtime.metrics.latency.name",
            "name must be a Prometheus metric name",
        ),
        (
            "a metrics path without its slash",
            deployment("runtime: {image: me/server:1, metrics: {path: metrics}}"),
            "spec.runtime.metrics.path",
            "path must start with /",
        ),
        (
            "a serving quantity that is no quantity",
            deployment("resources: {requests: {memory: plenty}}"),
            "spec.resources.requests[memory]",
            "must be a quantity that is not negative",
        ),
        (
            "autoscaling with maxReplicas < minReplicas",
            deployment(
                "resources: {requests: {cpu: 100m}}, autoscaling: {minReplicas: 3, maxReplicas: 2}",
            ),
            "spec.autoscaling",
            "maxReplicas must be at least minReplicas",
        ),
        (
            "autoscaling beyond 1000 replicas",
            deployment(
                "resources: {requests: {cpu: 100m}}, autoscaling: {minReplicas: 1, maxReplicas: 5000}",
            ),
            "spec.autoscaling.maxReplicas",
            "should be less than or equal to 1000",
        ),
        (
            "autoscaling without a CPU request",
            deployment("autoscaling: {minReplicas: 1, maxReplicas: 3}"),
            "spec.autoscaling",
            "autoscaling on CPU utilisation needs resources.requests.cpu",
        ),
        (
            "an HTTPRoute name that is no name",
            deployment("trafficRouting: {httpRoute: 'My Route'}"),
            "spec.trafficRouting.httpRoute",
            "httpRoute must be an HTTPRoute's name",
        ),
    ]
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn each_bad_object_is_refused_with_a_message_naming_the_field() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "admission").await.unwrap();
    let mut failures = Vec::new();
    for (what, yaml, field, message) in bad_objects() {
        let (accepted, err) = apply(&ns.name, &yaml);
        if accepted || !err.contains(&format!("{field}:")) || !err.contains(message) {
            failures.push(format!(
                "{what}: accepted={accepted}, expected `{field}: … {message}`, got: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_model_version_spec_cannot_change() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "immutable").await.unwrap();
    let mv = |digest: &str| {
        format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {{name: iris-1}}
spec:
  model: iris
  version: 1
  artifact: {{uri: "s3://models/iris/1/model.json", digest: "{digest}"}}
  lineage: {{trainingRun: iris, runId: r1, dataset: {{name: iris, version: abc}}, image: ciclo}}
"#
        )
    };
    let (ok, err) = apply(&ns.name, &mv("blake3:aa"));
    assert!(ok, "a valid ModelVersion is accepted: {err}");
    let (ok, err) = apply(&ns.name, &mv("blake3:bb"));
    assert!(!ok, "changing a ModelVersion's spec must be refused");
    assert!(
        err.contains("spec: Invalid value") && err.contains("ModelVersion spec is immutable"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn the_examples_are_accepted() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "examples").await.unwrap();
    // The single-file examples, and the team repository of examples/gitops (its namespace
    // is set by its kustomization, so each file applies anywhere).
    for name in [
        "dataset.yaml",
        "trainingrun.yaml",
        "modeldeployment.yaml",
        "gitops/ml-team/dataset.yaml",
        "gitops/ml-team/trainingrun.yaml",
        "gitops/ml-team/modeldeployment.yaml",
        "gitops/ml-team/production-dataset.yaml",
        "gitops/ml-team/production-trainingrun.yaml",
        "trainers/sklearn/trainingrun.yaml",
        "runtimes/mlserver/modeldeployment.yaml",
    ] {
        let (ok, err) = apply(&ns.name, &example(name));
        assert!(ok, "examples/{name} refused: {err}");
    }
    let (ok, out, err) = kubectl(
        &[
            "get",
            "datasets,trainingruns,modeldeployments",
            "-n",
            &ns.name,
            "-o",
            "name",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 10, "{out}");
}

#[test]
#[ignore = "needs the local cluster: make e2e"]
fn kubectl_explain_shows_the_field_docs() {
    let (ok, out, err) = kubectl(&["explain", "trainingrun.spec.workers"], None);
    assert!(ok, "{err}");
    assert!(
        out.contains("Number of workers; more than one runs distributed training"),
        "{out}"
    );
    let (ok, out, err) = kubectl(&["explain", "dataset.spec.source.uri"], None);
    assert!(ok, "{err}");
    assert!(out.contains("s3://bucket/prefix"), "{out}");
}

//! A team's scikit-learn training code through the whole cycle, on the kubelet node with its
//! real image (`examples/trainers/sklearn`, built from its Containerfile): it trains on the
//! WDBC data read from the S3 server, writes `model.onnx` and `metrics.json`, and reports its
//! metrics; the ModelVersion is served by `ciclo serve`, and the team's next version (other
//! hyperparameters) is canaried in under steady load with no failed request.

use ciclo_e2e::load::{infer, output, serving_target};
use ciclo_e2e::resources::{apply, ciclo, condition, wait_status};
use ciclo_e2e::wdbc::{request, training_run, world};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;

const DEPLOYMENT: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: wdbc}
spec:
  model: {name: wdbc, track: LatestBlessed}
  replicas: 2
  requireImprovement: false
  strategy:
    type: Canary
    steps: [{weight: 50, pause: 4s}]
  analysis: {minRequests: 10, maxErrorRatio: 0.0}
"#;

/// The metric `name` of a ModelVersion, as a number.
fn metric(mv: &Value, name: &str) -> f64 {
    mv["spec"]["lineage"]["metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no metric {name}: {mv}"))
}

/// The same 20 rows through the Service's `grpc` port (in the cluster: by its DNS name; on the
/// process node there is no Service routing, and no image to run anyway): ciclo serve's
/// gRPC half gives REST's labels.
async fn grpc_answers_as_rest(ns: &str, rest: &Value) {
    use ciclo_serve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
    use ciclo_serve::grpc::proto::model_infer_request::InferInputTensor;
    use ciclo_serve::grpc::proto::{InferTensorContents, ModelInferRequest};
    let (body, _) = request(20);
    let data: Vec<f32> = body["inputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let mut client = GrpcInferenceServiceClient::connect(format!("http://wdbc.{ns}.svc:8081"))
        .await
        .unwrap();
    let answer = client
        .model_infer(ModelInferRequest {
            model_name: "wdbc".into(),
            inputs: vec![InferInputTensor {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![20, 30],
                contents: Some(InferTensorContents {
                    fp32_contents: data,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let labels = answer
        .outputs
        .iter()
        .find(|o| o.name == "output_label")
        .and_then(|o| o.contents.as_ref())
        .map(|c| c.int64_contents.clone())
        .unwrap_or_else(|| panic!("{answer:?}"));
    let rest: Vec<i64> = output(rest, "output_label")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(labels, rest);
}

#[tokio::test]
#[ignore = "needs the local cluster with the kubelet node and the example images: make e2e"]
async fn a_scikit_learn_trainer_trains_on_wdbc_and_its_next_version_is_canaried_in_without_errors()
{
    let w = world("sklearn").await;
    if ciclo_e2e::on_process_node(&w.client).await {
        println!("skipped: the process node runs no images");
        return;
    }
    let ns = w.ns.name.clone();
    apply(&ns, &training_run(r#"{C: "1.0"}"#));
    apply(&ns, DEPLOYMENT);
    let deployments = ciclo(&w.client, &ns, "ModelDeployment");
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &ns);

    let mv = w.judged("wdbc-1").await;
    let artifact = mv["spec"]["artifact"]["uri"].as_str().unwrap_or_default();
    assert!(artifact.ends_with("/model.onnx"), "{mv}");
    assert!(
        mv["spec"]["artifact"]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("blake3:") && d.len() == 7 + 64),
        "{mv}"
    );
    // Real metrics of a real fit on held-out rows: a logistic regression on WDBC scores well
    // over 0.9 (and a constant guess would score 0.63 accuracy, 0.5 AUC).
    let (accuracy, auc) = (metric(&mv, "accuracy"), metric(&mv, "roc_auc"));
    assert!(accuracy > 0.9 && accuracy <= 1.0, "accuracy {accuracy}");
    assert!(auc > 0.95 && auc <= 1.0, "roc_auc {auc}");
    assert!(metric(&mv, "log_loss") > 0.0);
    assert_eq!(mv["spec"]["lineage"]["dataset"]["version"], w.v1.as_str());
    assert_eq!(
        mv["spec"]["lineage"]["image"],
        ciclo_e2e::images::SKLEARN_TRAINER
    );
    assert_eq!(
        condition(&mv["status"], "Blessed").unwrap()["status"],
        "True"
    );
    // metrics.json beside the model holds the same figures.
    let metrics_path = artifact
        .trim_start_matches(&format!("s3://{}/", ciclo_e2e::s3::ARTIFACTS))
        .replace("model.onnx", "metrics.json");
    let written: Value = serde_json::from_str(
        &ciclo_e2e::s3::artifact(&metrics_path)
            .await
            .unwrap_or_else(|| panic!("no {metrics_path}")),
    )
    .unwrap();
    assert_eq!(written["accuracy"].as_f64(), Some(accuracy), "{written}");

    wait_status(&deployments, "wdbc", "version 1 serving", |s| {
        s["servingVersion"] == 1
    })
    .await;
    let target = serving_target(&pods, "wdbc", 2).await;
    let (body, truth) = request(20);
    let answer = infer(&reqwest::Client::new(), &target, "wdbc", &body).await;
    // The example trains on class indices in sorted order: B is 0, M is 1.
    let right = output(&answer, "output_label")["data"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&truth)
        .filter(|(got, want)| got.as_i64() == Some(i64::from(want.as_str() == "M")))
        .count();
    assert!(right >= 17, "{right} of 20 diagnoses right: {answer}");
    grpc_answers_as_rest(&w.ns.name, &answer).await;

    // The team's next fit (stronger regularisation) → version 2, canaried in under load.
    let (one_row, _) = request(1);
    let load = ciclo_e2e::load::start(pods.clone(), "wdbc", "wdbc", move |_| one_row.clone());
    apply(&ns, &training_run(r#"{C: "0.3"}"#));
    let s = wait_status(&deployments, "wdbc", "version 2 promoted", |s| {
        s["servingVersion"] == 2 && s["canaryVersion"].is_null()
    })
    .await;
    load.stop_after_rollout(1, 2).await;
    assert_eq!(s["history"][0]["result"], "Promoted", "{s}");
    let v2 = w.versions.get("wdbc-2").await.unwrap().data;
    assert_eq!(v2["spec"]["lineage"]["params"]["C"], "0.3", "{v2}");
}

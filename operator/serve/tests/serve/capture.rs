//! Capture: sampled v2 requests land as Parquet files with their request ids, inputs and
//! outputs; the ids are returned to the clients; labels sent later land beside them; what was
//! queued is written when the server stops.

use crate::common::http;
use crate::v2::iris;
use arrow::array::{Array, Float64Array, StringArray, UInt32Array};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use std::path::{Path, PathBuf};

const INFER: &str = "/v2/models/iris/infer";
const FEEDBACK: &str = "/v2/models/iris/feedback";

/// Every Parquet file under `dir`, with its path.
fn parquet_files(dir: &Path) -> Vec<(PathBuf, RecordBatch)> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).unwrap();
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
                for batch in reader {
                    found.push((path.clone(), batch.unwrap()));
                }
            }
        }
    }
    found
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let a = batch.column_by_name(column).unwrap_or_else(|| {
        panic!("no column {column} in {:?}", batch.schema());
    });
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

/// The `row` column: each row's index in its request's batch.
fn row_indexes(batch: &RecordBatch) -> Vec<u32> {
    let a = batch.column_by_name("row").unwrap();
    a.as_any()
        .downcast_ref::<UInt32Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn floats(batch: &RecordBatch, column: &str) -> Vec<f64> {
    let a = batch.column_by_name(column).unwrap();
    a.as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[tokio::test]
async fn captured_requests_land_as_parquet_with_their_ids_inputs_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("file://{}/captures", dir.path().display());
    // A flush far off: the files are written because the server stops.
    let (_m, s) = iris(&["--capture-uri", &uri, "--capture-flush-seconds", "3600"]).await;
    // The model's matrix input, with the client's own id: two rows.
    let a = http::post(
        s.addr,
        INFER,
        &json!({"id": "client-1", "inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64",
            "data": [[1.5, -2.0], [-4.0, 0.5]]}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["id"], "client-1");
    // One tensor per feature, without an id: the server gives one.
    let b = http::post(
        s.addr,
        INFER,
        &json!({"inputs": [
            {"name": "x1", "shape": [1], "datatype": "FP64", "data": [3.25]},
            {"name": "x2", "shape": [1], "datatype": "FP64", "data": [7.0]}]}),
    )
    .await;
    assert_eq!(b.status, 200, "{}", b.body);
    let b_id = b.json()["id"].as_str().unwrap().to_string();
    assert!(
        b_id.len() == 32 && b_id.bytes().all(|c| c.is_ascii_hexdigit()),
        "{b_id}"
    );
    // A request that fails is not captured.
    let bad = http::post(
        s.addr,
        INFER,
        &json!({"id": "bad", "inputs": [{"name": "nope", "shape": [1], "datatype": "FP64", "data": [1]}]}),
    )
    .await;
    assert_eq!(bad.status, 400);
    // Labels, later: by the ids answered and the rows of the batches.
    let labels = http::post(
        s.addr,
        FEEDBACK,
        &json!({"labels": [
            {"id": "client-1", "row": 1, "values": {"label": "no"}},
            {"id": "client-1", "values": {"label": "yes"}},
            {"id": b_id, "values": {"label": "yes"}}]}),
    )
    .await;
    assert_eq!(labels.status, 200, "{}", labels.body);
    assert_eq!(labels.json()["accepted"], 3);
    for (bad, says) in [
        (
            json!({"labels": [{"id": "", "values": {"label": "no"}}]}),
            "labels[0].id: the request id is empty",
        ),
        (
            json!({"labels": [{"id": "x", "values": {}}]}),
            "labels[0].values: no label given",
        ),
        (
            json!({"labels": [{"id": "x", "values": {"label": "a"}}, {"id": "x", "values": {"label": [1]}}]}),
            "labels[1].values.label: a label is a string, a number or a boolean, not [1]",
        ),
        (
            json!({"labels": [{"id": "x", "values": {"row": 2}}]}),
            "labels[0].values.row: \"row\" is a column of every label file",
        ),
        (
            json!({"labels": [{"id": "x", "label": "a"}]}),
            "unknown field `label`",
        ),
    ] {
        let r = http::post(s.addr, FEEDBACK, &bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.error().contains(says), "{bad}: {}", r.error());
    }
    let metrics = http::get(s.addr, "/metrics").await.body;
    assert!(
        metrics.contains("ciclo_serve_capture_requests_total 2")
            && metrics.contains("ciclo_serve_capture_labels_total 3"),
        "{metrics}"
    );
    s.stop().await.unwrap();

    let files = parquet_files(dir.path());
    assert_eq!(
        files.len(),
        2,
        "one file of requests, one of labels: {files:?}"
    );
    let of = |folder: &str| {
        files
            .iter()
            .find(|(path, _)| {
                let relative = path.strip_prefix(dir.path()).unwrap().to_str().unwrap();
                regex_like(relative, folder)
            })
            .unwrap_or_else(|| panic!("no captures/{folder}/date=…/hour=…/….parquet in {files:?}"))
    };
    let (_, labelled) = of("labels");
    assert_eq!(
        strings(labelled, "request_id"),
        ["client-1", "client-1", b_id.as_str()]
    );
    assert_eq!(row_indexes(labelled), [1, 0, 0]);
    assert_eq!(strings(labelled, "label"), ["no", "yes", "yes"]);
    assert!(labelled.column_by_name("model_version").is_none());
    let (_, batch) = of("requests");
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(
        strings(batch, "request_id"),
        ["client-1", "client-1", b_id.as_str()]
    );
    assert_eq!(row_indexes(batch), [0, 1, 0]);
    assert_eq!(strings(batch, "model_version"), ["3", "3", "3"]);
    // The inputs under the features' names, as in the data the model was trained on.
    assert_eq!(floats(batch, "x1"), [1.5, -4.0, 3.25]);
    assert_eq!(floats(batch, "x2"), [-2.0, 0.5, 7.0]);
    // The outputs as answered.
    let answered: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|r| {
            r.json()["outputs"][0]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(strings(batch, "predict"), answered);
    let p0 = floats(batch, "predict_proba_0");
    let p1 = floats(batch, "predict_proba_1");
    let probabilities = a.json()["outputs"][1]["data"].clone();
    assert_eq!(json!([p0[0], p1[0], p0[1], p1[1]]), probabilities);
    // Each column says what it holds, so a dataset of the capture takes inputs and labels.
    let roles = |batch: &RecordBatch| -> Vec<(String, Option<String>)> {
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| {
                (
                    f.name().clone(),
                    f.metadata().get("ciclo.dev/role").cloned(),
                )
            })
            .collect()
    };
    let role = |name: &str, role: Option<&str>| (name.to_string(), role.map(String::from));
    assert_eq!(
        roles(batch),
        [
            role("request_id", None),
            role("row", None),
            role("time", None),
            role("model_version", None),
            role("x1", Some("input")),
            role("x2", Some("input")),
            role("predict", Some("output")),
            role("predict_proba_0", Some("output")),
            role("predict_proba_1", Some("output")),
        ]
    );
    assert_eq!(roles(labelled)[3], role("label", Some("label")));
}

/// `captures/<folder>/date=YYYY-MM-DD/hour=HH/<name>.parquet`.
fn regex_like(path: &str, folder: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    matches!(parts[..], ["captures", f, date, hour, name]
        if f == folder && date.strip_prefix("date=").is_some_and(|d| d.len() == 10 && digits(&d.replace('-', "")))
            && hour.strip_prefix("hour=").is_some_and(|h| h.len() == 2 && digits(h))
            && name.ends_with(".parquet"))
}

#[tokio::test]
async fn without_capture_no_id_is_made_up_no_label_is_taken_and_a_bad_ratio_is_refused() {
    let (_m, s) = iris(&[]).await;
    let r = http::post(
        s.addr,
        INFER,
        &json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().get("id").is_none(), "{}", r.body);
    let labels = http::post(
        s.addr,
        FEEDBACK,
        &json!({"labels": [{"id": "x", "values": {"label": "no"}}]}),
    )
    .await;
    assert_eq!(labels.status, 400);
    assert!(
        labels.error().contains("--capture-uri"),
        "{}",
        labels.error()
    );
    s.stop().await.unwrap();

    let args = crate::common::server::args(&[
        "--model-uri",
        "file:///nonexistent/model.json",
        "--capture-uri",
        "file:///tmp/captures",
        "--capture-ratio",
        "1.5",
    ]);
    let e = ciclo_serve::Server::bind(&args).await.err().unwrap();
    assert!(e.to_string().contains("--capture-ratio 1.5"), "{e}");
    // Hashing without a key would write values anyone can hash again: refused.
    let args = crate::common::server::args(&[
        "--model-uri",
        "file:///nonexistent/model.json",
        "--capture-uri",
        "file:///tmp/captures",
        "--capture-hash",
        "ssn",
    ]);
    let e = ciclo_serve::Server::bind(&args).await.err().unwrap();
    assert!(
        e.to_string()
            .contains("--capture-hash ssn needs the key in CICLO_CAPTURE_HASH_KEY"),
        "{e}"
    );
}

#[tokio::test]
async fn grpc_requests_are_captured_too_with_the_id_they_are_answered_with() {
    use crate::grpc::{client, column, request};
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("file://{}/captures", dir.path().display());
    let (_m, s) = iris(&["--capture-uri", &uri, "--grpc-port", "0"]).await;
    let mut grpc = client(s.grpc.unwrap()).await;
    let mut no_id = request(vec![column("x1", 0), column("x2", 1)]);
    no_id.id = String::new();
    let answered = grpc.model_infer(no_id).await.unwrap().into_inner();
    assert_eq!(answered.id.len(), 32, "{:?}", answered.id);
    let with_id = request(vec![column("x1", 0), column("x2", 1)]);
    assert_eq!(
        grpc.model_infer(with_id).await.unwrap().into_inner().id,
        "r-1"
    );
    s.stop().await.unwrap();
    let files = parquet_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let batch = &files[0].1;
    let mut expected = vec![answered.id.clone(); 3];
    expected.extend(["r-1".to_string(), "r-1".into(), "r-1".into()]);
    assert_eq!(strings(batch, "request_id"), expected);
    assert_eq!(row_indexes(batch), [0, 1, 2, 0, 1, 2]);
    assert_eq!(floats(batch, "x1"), [4.0, -4.0, 0.3, 4.0, -4.0, 0.3]);
}

//! `ciclo lineage` as a user runs it: the binary, a kubeconfig, and an API server (a small
//! HTTP/1.1 stand-in on loopback that answers GETs from fixed objects, 404 otherwise; label
//! selectors are checked by the unit tests in src/lineage/fetch.rs, so a list here returns every
//! object of the kind). What is checked is what a user sees: stdout, stderr and exit code.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// A model version whose TrainingRun and Dataset are both gone.
fn model_version() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "name": "iris-2",
            "namespace": "ml",
            "labels": {"ciclo.dev/model": "iris", "ciclo.dev/version": "2"},
        },
        "spec": {
            "model": "iris",
            "version": 2,
            "artifact": {"uri": "s3://ciclo/ml/models/iris/2/model.json", "digest": "blake3:7d9e"},
            "lineage": {
                "trainingRun": "iris-train",
                "runId": "9c1e0a7b42",
                "dataset": {"name": "iris", "version": "3f2a9c0e5b7d41a8c6e2f09d1b3a7c55"},
                "image": "ciclo (built-in trainer)",
                "metrics": {"accuracy": 0.95},
            },
        },
    })
}

/// Serves `objects` by their API path until the test ends; returns the paths asked for.
fn api_server(objects: Vec<serde_json::Value>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            // The rest of the head; a GET has no body.
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(path.clone());
            let collection = |o: &serde_json::Value| {
                format!(
                    "/apis/ciclo.dev/v1alpha1/namespaces/{}/{}s",
                    o["metadata"]["namespace"].as_str().unwrap(),
                    o["kind"].as_str().unwrap().to_lowercase()
                )
            };
            let (list, query) = path.split_once('?').unwrap_or((&path, ""));
            let found = objects.iter().find(|o| {
                path == format!(
                    "{}/{}",
                    collection(o),
                    o["metadata"]["name"].as_str().unwrap()
                )
            });
            let (status, body) = match found {
                Some(o) => ("200 OK", o.clone()),
                None if query.contains("labelSelector=") => (
                    "200 OK",
                    serde_json::json!({"apiVersion": "ciclo.dev/v1alpha1", "kind": "List",
                        "metadata": {}, "items": objects.iter().filter(|o| collection(o) == list).collect::<Vec<_>>()}),
                ),
                None => (
                    "404 Not Found",
                    serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
            };
            let body = body.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// A kubeconfig whose context points at the stand-in, in namespace `ml`.
fn kubeconfig(dir: &tempfile::TempDir, port: u16) -> std::path::PathBuf {
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]
users: [{{name: me, user: {{}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: me, namespace: ml}}}}]
current-context: fake
"
        ),
    )
    .unwrap();
    path
}

fn ciclo(kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ciclo"))
        .arg("lineage")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        // Never the in-cluster configuration, should the tests run in a pod.
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap()
}

#[test]
fn lineage_reads_the_kubeconfig_contexts_namespace_and_prints_json() {
    let (port, seen) = api_server(vec![model_version()]);
    let dir = tempfile::tempdir().unwrap();
    let out = ciclo(&kubeconfig(&dir, port), &["iris-2", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["namespace"], "ml");
    assert_eq!(json["model"]["name"], "iris-2");
    assert_eq!(json["run"]["found"], "gone");
    assert_eq!(json["dataset"]["found"], "gone");
    assert_eq!(
        seen.lock().unwrap()[0],
        "/apis/ciclo.dev/v1alpha1/namespaces/ml/modelversions/iris-2"
    );
}

#[test]
fn lineage_prints_text_by_default_and_says_what_is_gone() {
    let (port, _) = api_server(vec![model_version()]);
    let dir = tempfile::tempdir().unwrap();
    let out = ciclo(&kubeconfig(&dir, port), &["iris:2"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with(
        "dataset iris  version 3f2a9c0e5b7d41a8c6e2f09d1b3a7c55\n│  (the Dataset iris is gone: only the version id is known)\n"
    ), "{text}");
    assert!(
        text.contains("(the TrainingRun iris-train is gone"),
        "{text}"
    );
    assert!(
        text.ends_with("      └─ deployed by  (none yet)\n"),
        "{text}"
    );
}

#[test]
fn lineage_of_a_missing_model_version_fails_naming_it_and_the_namespace() {
    let (port, _) = api_server(vec![model_version()]);
    let dir = tempfile::tempdir().unwrap();
    let out = ciclo(&kubeconfig(&dir, port), &["-n", "other", "iris-2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: ModelVersion iris-2 not found in namespace other\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn lineage_refuses_a_malformed_name_before_connecting() {
    // No kubeconfig at all: the name must be refused before any configuration is read.
    let dir = tempfile::tempdir().unwrap();
    let out = ciclo(&dir.path().join("none"), &["Iris_2"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage-error code");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"Iris_2\" is neither a ModelVersion name"),
        "{stderr}"
    );
}

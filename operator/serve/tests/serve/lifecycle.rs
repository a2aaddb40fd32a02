//! The server's life in a process of its own: not ready while the model loads from an S3
//! endpoint, never ready with a wrong digest, and SIGTERM's drain.

use crate::common::http;
use crate::common::model;
use crate::common::process::{self, Process};
use crate::common::s3;
use crate::common::server;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

fn infer_body() -> Vec<u8> {
    json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [4.0, 1.0]}]})
        .to_string()
        .into_bytes()
}

async fn wait_ready(p: &mut Process) {
    for _ in 0..1000 {
        assert!(p.running(), "it exited; logs:\n{}", p.logs());
        if http::get(p.addr, "/v2/health/ready").await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not ready after 20 s; logs:\n{}", p.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_live_but_not_ready_until_the_model_has_loaded_from_s3() {
    let m = model::classifier().await;
    let store = s3::slow_store(
        "models/ml/models/iris/3/model.json",
        std::fs::read(&m.path).unwrap(),
    )
    .await;
    let mut env = store.env();
    env.extend([
        (
            "CICLO_MODEL_URI",
            "s3://models/ml/models/iris/3/model.json".to_string(),
        ),
        ("CICLO_MODEL_DIGEST", m.digest.clone()),
        ("CICLO_MODEL_NAME", "iris".into()),
        ("CICLO_MODEL_VERSION", "3".into()),
        ("CICLO_DRAIN_SECONDS", "0".into()),
    ]);
    let mut p = process::spawn(&env);
    p.wait_live().await;
    store.wait_asked().await;

    let live = http::get(p.addr, "/v2/health/live").await;
    assert_eq!(live.status, 200);
    let loading = "model \"iris\" is still loading";
    for path in [
        "/v2/health/ready",
        "/v2/models/iris/ready",
        "/v1/models/iris",
    ] {
        let reply = http::get(p.addr, path).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.body);
        assert_eq!(reply.json()["ready"], false, "{path}");
        assert_eq!(reply.error(), loading, "{path}");
    }
    let reply = http::get(p.addr, "/v2/models/iris").await;
    assert_eq!((reply.status, reply.error()), (503, loading.to_string()));
    let reply = http::post_raw(p.addr, "/v2/models/iris/infer", &infer_body()).await;
    assert_eq!((reply.status, reply.error()), (503, loading.to_string()));
    let metrics = http::get(p.addr, "/metrics").await.body;
    assert!(metrics.contains("ciclo_serve_model_ready 0"), "{metrics}");

    store.open();
    wait_ready(&mut p).await;
    let reply = http::post_raw(p.addr, "/v2/models/iris/infer", &infer_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["outputs"][0]["data"], json!(["yes"]));

    p.terminate();
    assert!(p.exit(Duration::from_secs(10)).success(), "{}", p.logs());
}

#[tokio::test]
async fn a_model_whose_digest_differs_is_never_served() {
    let m = model::classifier().await;
    let wrong = format!("blake3:{}", blake3::hash(b"another model").to_hex());
    // A local path, as given by hand.
    let mut p = process::spawn(&[
        ("CICLO_MODEL_URI", m.path.display().to_string()),
        ("CICLO_MODEL_DIGEST", wrong.clone()),
    ]);
    let status = p.exit(Duration::from_secs(20));
    assert!(!status.success(), "{status:?}");
    let logs = p.logs();
    assert!(
        logs.contains(&format!(
            "has digest {}, not the expected {wrong}",
            m.digest
        )),
        "{logs}"
    );
    assert!(logs.contains("refusing to serve it"), "{logs}");

    // In a process of one's own making: `run` ends with the error and the port is closed.
    let s = server::start(server::args(&[
        "--model-uri",
        &m.uri(),
        "--model-digest",
        &wrong,
    ]))
    .await;
    let addr = s.addr;
    match s.ended().await {
        Err(ciclo_serve::Error::DigestMismatch {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (wrong, m.digest.clone())),
        other => panic!("{other:?}"),
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_ready_off_serves_through_the_drain_and_finishes_requests_in_flight() {
    let m = model::classifier().await;
    let drain = Duration::from_secs(3);
    let mut p = process::spawn(&[
        ("CICLO_MODEL_URI", m.uri()),
        ("CICLO_MODEL_DIGEST", m.digest.clone()),
        ("CICLO_MODEL_NAME", "iris".into()),
        ("CICLO_DRAIN_SECONDS", drain.as_secs().to_string()),
    ]);
    p.wait_live().await;
    wait_ready(&mut p).await;

    // A request in flight: its head and half its body are sent before SIGTERM.
    let body = infer_body();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = http::connect(p.addr).await;
    let head = http::head("POST", "/v2/models/iris/infer", Some(body.len()));
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    p.terminate();
    let signalled = Instant::now();
    let ready = loop {
        let reply = http::get(p.addr, "/v2/health/ready").await;
        if reply.status != 200 || signalled.elapsed() > Duration::from_secs(1) {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(ready.status, 503, "not ready at once: {}", ready.body);
    assert_eq!(ready.error(), "the server is shutting down");
    // While endpoints catch up, new connections are still served.
    let reply = http::post_raw(p.addr, "/v2/models/iris/infer", &infer_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        signalled.elapsed() < drain,
        "the checks took the whole drain"
    );

    // After the drain, no new connection is taken...
    tokio::time::sleep((drain + Duration::from_millis(700)).saturating_sub(signalled.elapsed()))
        .await;
    assert!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "still accepting after the drain"
    );
    assert!(p.running(), "it waits for the request in flight");
    // ...and the request in flight still gets its answer.
    in_flight.write_all(rest).await.unwrap();
    let reply = http::read_reply(&mut in_flight).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["outputs"][0]["data"], json!(["yes"]));

    let status = p.exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", p.logs());
}

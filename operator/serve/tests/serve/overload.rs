//! Overload: beyond `--max-concurrent-requests` inference requests at once, one more is
//! refused at once with 503 and `Retry-After` (gRPC: UNAVAILABLE) instead of waiting, health
//! is still answered, and the server serves again as soon as the requests in flight end.

use crate::common::http;
use crate::grpc::{client, column, request};
use crate::v2::iris;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

const PREDICT: &str = "/v1/models/iris:predict";

#[tokio::test]
async fn requests_beyond_the_limit_are_refused_at_once_and_served_again_after() {
    let (_m, s) = iris(&["--max-concurrent-requests", "2", "--grpc-port", "0"]).await;
    let body = json!({"instances": [[1, 2]]}).to_string();
    // Two requests in flight: their heads sent, their bodies not yet whole.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = http::connect(s.addr).await;
        let head = http::head("POST", PREDICT, Some(body.len()));
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body.as_bytes()[..5]).await.unwrap();
        held.push(stream);
    }
    // A third, whole, is refused once the server has begun both (until then it is served).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (refused, took) = loop {
        let start = Instant::now();
        let reply = http::post_raw(s.addr, PREDICT, body.as_bytes()).await;
        if reply.status == 503 || Instant::now() > deadline {
            break (reply, start.elapsed());
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.error().contains("overloaded") && refused.error().contains("2 inference"),
        "{}",
        refused.error()
    );
    assert!(
        took < Duration::from_secs(1),
        "refused at once, not after {took:?}"
    );
    let ready = http::get(s.addr, "/v2/health/ready").await;
    assert_eq!(ready.status, 200, "health is answered while overloaded");
    let mut c = client(s.grpc.unwrap()).await;
    let status = c
        .model_infer(request(vec![column("x1", 0), column("x2", 1)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("overloaded"), "{status:?}");

    // The held requests end, and are answered; then new ones are served again.
    for mut stream in held {
        stream.write_all(&body.as_bytes()[5..]).await.unwrap();
        let reply = http::read_reply(&mut stream).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = http::post_raw(s.addr, PREDICT, body.as_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let served = c
        .model_infer(request(vec![column("x1", 0), column("x2", 1)]))
        .await;
    assert!(served.is_ok(), "{served:?}");
    let metrics = http::get(s.addr, "/metrics").await.body;
    assert!(
        metrics.contains(
            r#"ciclo_serve_requests_total{route="/v1/models/{name}:predict",code="503"}"#
        ),
        "{metrics}"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_limit_of_zero_is_refused_naming_the_flag() {
    let args = crate::common::server::args(&[
        "--model-uri",
        "file:///nowhere/model.json",
        "--max-concurrent-requests",
        "0",
    ]);
    let Err(e) = ciclo_serve::Server::bind(&args).await else {
        panic!("a server that refuses everything started");
    };
    assert!(
        e.to_string()
            .contains("--max-concurrent-requests must be at least 1"),
        "{e}"
    );
}

//! A Kubernetes API server for unit tests of request shapes: each request's URI gets the
//! status and JSON body `answer` gives it. (Behaviour is proven against the real control
//! plane in e2e/tests.)

use kube::Client;
use kube::client::Body;

/// A client in `namespace` whose every request is answered by `answer`.
pub fn client<F>(namespace: &str, answer: F) -> Client
where
    F: Fn(&http::Uri) -> (u16, serde_json::Value) + Clone + Send + Sync + 'static,
{
    let service = tower::service_fn(move |req: http::Request<Body>| {
        let (status, body) = answer(req.uri());
        async move {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string().into_bytes()))
                    .unwrap(),
            )
        }
    });
    Client::new(service, namespace)
}

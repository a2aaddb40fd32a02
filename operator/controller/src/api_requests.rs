//! Counting the operator's requests to the Kubernetes API: a tower layer in front of kube's
//! client stack that counts every request by verb and resource, for the metric
//! `ciclo_kube_requests_total{verb, resource}`.
//!
//! It sits outside kube's own retry layer, so it counts what the operator asked for: a request
//! that kube's client retried (429, 503, 504) counts once. Watches count when they (re)start,
//! not per event.

use ::http::{Method, Request};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The labels of `ciclo_kube_requests_total`: few values each, so the series stay few.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// get, list, watch, create, update, patch, delete, deletecollection (the API server's
    /// own names), or the HTTP method of a request that is not a resource request.
    pub verb: &'static str,
    /// The resource's plural, with the subresource after a slash (`trainingruns/status`);
    /// empty for a request that is not a resource request (`/version`, discovery).
    pub resource: String,
}

/// The layer kube's `ClientBuilder::with_layer` takes.
#[derive(Clone)]
pub struct CountRequestsLayer {
    requests: Family<RequestLabels, Counter>,
}

impl CountRequestsLayer {
    pub fn new(requests: Family<RequestLabels, Counter>) -> Self {
        Self { requests }
    }
}

impl<S> Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            requests: self.requests.clone(),
        }
    }
}

/// Counts each request, then hands it on unchanged.
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    requests: Family<RequestLabels, Counter>,
}

impl<S, B> Service<Request<B>> for CountRequests<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.requests
            .get_or_create(&classify(req.method(), req.uri()))
            .inc();
        self.inner.call(req)
    }
}

/// The verb and resource of a request, from its method and path as the API server reads
/// them: `/api/v1/...` or `/apis/<group>/<version>/...`, then `namespaces/<ns>/` when
/// namespaced, then `<plural>[/<name>[/<subresource>]]`.
pub fn classify(method: &Method, uri: &::http::Uri) -> RequestLabels {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    // `namespaces/<ns>/<plural>…` is namespaced; `namespaces[/<ns>[/status]]` is the
    // Namespace resource itself.
    let rest = match rest {
        ["namespaces", _ns, plural, ..] if *plural != "status" && *plural != "finalize" => {
            &rest[2..]
        }
        _ => rest,
    };
    let (resource, named) = match rest {
        [] => (String::new(), false),
        [plural] => ((*plural).to_string(), false),
        [plural, _name] => ((*plural).to_string(), true),
        [plural, _name, sub, ..] => (format!("{plural}/{sub}"), true),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = if resource.is_empty() {
        match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            _ => "other",
        }
    } else {
        match (method, named) {
            (&Method::GET, _) if watch => "watch",
            (&Method::GET, true) => "get",
            (&Method::GET, false) => "list",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => "other",
        }
    };
    RequestLabels { verb, resource }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};

    fn count(family: &Family<RequestLabels, Counter>, verb: &'static str, resource: &str) -> u64 {
        family
            .get_or_create(&RequestLabels {
                verb,
                resource: resource.into(),
            })
            .get()
    }

    /// A client whose API server answers every request with an empty 404, behind the layer:
    /// the requests are kube's own, so the test checks the shapes kube really sends.
    fn counted_client(family: &Family<RequestLabels, Counter>) -> kube::Client {
        let server = tower::service_fn(|_req: Request<kube::client::Body>| async {
            let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;
            Ok::<_, std::convert::Infallible>(
                ::http::Response::builder()
                    .status(404)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.as_bytes().to_vec()))
                    .unwrap(),
            )
        });
        let service = CountRequestsLayer::new(family.clone()).layer(server);
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn every_request_of_the_client_is_counted_by_verb_and_resource() {
        let family = Family::<RequestLabels, Counter>::default();
        let client = counted_client(&family);
        let jobs: Api<Job> = Api::namespaced(client.clone(), "ml");
        let _ = jobs.get("a").await;
        let _ = jobs.get("b").await;
        let _ = jobs.list(&ListParams::default().labels("x=y")).await;
        let _ = jobs.create(&PostParams::default(), &Job::default()).await;
        let _ = jobs
            .patch_status(
                "a",
                &PatchParams::apply("t"),
                &Patch::Apply(serde_json::json!({})),
            )
            .await;
        let _ = jobs.delete("a", &Default::default()).await;
        let _ = jobs.watch(&WatchParams::default(), "0").await;
        let _ = Api::<Job>::all(client.clone())
            .list(&Default::default())
            .await;
        let _ = Api::<Namespace>::all(client).get("ml").await;

        assert_eq!(count(&family, "get", "jobs"), 2);
        assert_eq!(count(&family, "list", "jobs"), 2, "namespaced and all");
        assert_eq!(count(&family, "create", "jobs"), 1);
        assert_eq!(count(&family, "patch", "jobs/status"), 1);
        assert_eq!(count(&family, "delete", "jobs"), 1);
        assert_eq!(count(&family, "watch", "jobs"), 1);
        assert_eq!(count(&family, "get", "namespaces"), 1);
    }

    #[test]
    fn paths_that_are_not_resources_keep_their_method_and_no_resource() {
        let labels = classify(&Method::GET, &"/version".parse().unwrap());
        assert_eq!((labels.verb, labels.resource.as_str()), ("GET", ""));
        let labels = classify(
            &Method::PUT,
            &"/api/v1/namespaces/ml/finalize".parse().unwrap(),
        );
        assert_eq!(
            (labels.verb, labels.resource.as_str()),
            ("update", "namespaces/finalize")
        );
        let labels = classify(
            &Method::PATCH,
            &"/apis/coordination.k8s.io/v1/namespaces/ciclo-system/leases/ciclo-operator"
                .parse()
                .unwrap(),
        );
        assert_eq!((labels.verb, labels.resource.as_str()), ("patch", "leases"));
    }
}

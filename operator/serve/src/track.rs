//! Counts and times every HTTP request by its route's template and status code: a service
//! around the whole router.
//!
//! Around the router, not a layer on its routes: `Router::layer` boxes the layer into every
//! route again (a clone of the route's service and a boxed future more for each request) and
//! `axum::middleware::from_fn` clones and boxes once more. Measured in process through the
//! router, a request of one row took ~0.4 µs more with that middleware than without any,
//! ~0.2 µs with this. Outside the router the matched route is not known, so the request's
//! path is matched here against the same templates with the matcher axum's router uses
//! (matchit): a hit is a template of the table the router is built from.
//!
//! Having matched it, the service answers the one route that carries the load, `POST
//! /v2/models/{name}/infer`, itself ([`crate::v2::infer_named`], the handler the router
//! would call): the router's second match, its extractors and its boxed, cloned route
//! service cost ~0.2 µs of a ~10 µs request under load. Every other request, and any other
//! method on that path, goes through the router.

use crate::metrics::Metrics;
use crate::state::State;
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use futures::future::Either;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

/// The route of `GET /v1/models/{name}` and `POST /v1/models/{name}:predict`.
pub(crate) const V1_TARGET: &str = "/v1/models/{target}";
const V1_PREDICT: &str = "/v1/models/{name}:predict";
const V1_STATUS: &str = "/v1/models/{name}";
/// The label of a request no route took.
const UNMATCHED: &str = "unmatched";
/// The route answered without the router.
pub(crate) const INFER: &str = "/v2/models/{name}/infer";

/// The labels requests are counted under, and what tells them.
pub(crate) struct Routes {
    metrics: Arc<Metrics>,
    /// Each template of the router, to the index of its label in `labels`.
    matcher: matchit::Router<Target>,
    labels: Vec<Label>,
}

#[derive(Clone, Copy)]
enum Target {
    Route(usize),
    /// The one route that serves both v1 verbs is labelled apart by verb, so `:predict` is
    /// told from a readiness check.
    ByVerb {
        post: usize,
        other: usize,
    },
}

/// A label's latency histogram and its count of 200 answers, taken out of their families the
/// first time they are used (so a route shows once it is asked): most answers are then counted
/// without the families' lookups (a hash of the labels under a lock, twice a request).
struct Label {
    route: &'static str,
    duration: OnceLock<Histogram>,
    answered: OnceLock<Counter>,
}

impl Routes {
    /// The labels of the router built from `templates`.
    pub fn new(metrics: Arc<Metrics>, templates: impl IntoIterator<Item = &'static str>) -> Self {
        let mut labels = Vec::new();
        let mut label = |route| {
            labels.push(Label {
                route,
                duration: OnceLock::new(),
                answered: OnceLock::new(),
            });
            labels.len() - 1
        };
        let mut matcher = matchit::Router::new();
        for template in templates {
            let target = match template {
                V1_TARGET => Target::ByVerb {
                    post: label(V1_PREDICT),
                    other: label(V1_STATUS),
                },
                route => Target::Route(label(route)),
            };
            matcher
                .insert(template, target)
                .expect("the router's templates are distinct and valid");
        }
        label(UNMATCHED);
        Self {
            metrics,
            matcher,
            labels,
        }
    }

    /// The index of the label of a request for `path` with `method`, and for an inference
    /// request (`POST` [`INFER`]) the model it names.
    fn route(&self, method: &Method, path: &str) -> (usize, Option<String>) {
        match self.matcher.at(path) {
            Ok(m) => match *m.value {
                Target::Route(index)
                    if method == Method::POST && self.labels[index].route == INFER =>
                {
                    (index, m.params.get("name").map(String::from))
                }
                Target::Route(index) => (index, None),
                Target::ByVerb { post, .. } if method == Method::POST => (post, None),
                Target::ByVerb { other, .. } => (other, None),
            },
            Err(_) => (self.labels.len() - 1, None),
        }
    }

    fn record(&self, index: usize, code: u16, took: Duration) {
        let label = &self.labels[index];
        label
            .duration
            .get_or_init(|| self.metrics.duration_of(label.route))
            .observe(took.as_secs_f64());
        if code == 200 {
            label
                .answered
                .get_or_init(|| self.metrics.requests_of(label.route, code))
                .inc();
        } else {
            self.metrics.requests_of(label.route, code).inc();
        }
    }
}

/// `inner` (the router), each answer counted and timed; inference requests answered with
/// `state` directly.
#[derive(Clone)]
pub(crate) struct Track<S> {
    inner: S,
    routes: Arc<Routes>,
    state: Arc<State>,
}

impl<S> Track<S> {
    pub fn new(inner: S, routes: Routes, state: Arc<State>) -> Self {
        Self {
            inner,
            routes: Arc::new(routes),
            state,
        }
    }
}

/// The answer of the router, or of the inference handler.
type Direct = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Tracking<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let start = Instant::now();
        let (label, model) = self.routes.route(request.method(), request.uri().path());
        let answer = match model {
            Some(name) => {
                let state = self.state.clone();
                Either::Right(Box::pin(async move {
                    Ok(crate::v2::infer_named(state, name, request).await)
                }) as Direct)
            }
            None => Either::Left(self.inner.call(request)),
        };
        Tracking {
            answer,
            counted: Some((self.routes.clone(), label)),
            start,
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's answer, counted when it is ready. (One dropped before, its client gone, is
    /// not: it has no status.)
    pub(crate) struct Tracking<F> {
        #[pin]
        answer: Either<F, Direct>,
        counted: Option<(Arc<Routes>, usize)>,
        start: Instant,
    }
}

impl<F> Future for Tracking<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.answer.poll(cx));
        if let Some((routes, label)) = this.counted.take() {
            routes.record(label, response.status().as_u16(), this.start.elapsed());
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_with_the_template_the_router_takes_them_by() {
        let routes = Routes::new(
            Arc::new(Metrics::default()),
            [
                "/v2/models/{name}",
                "/v2/models/{name}/infer",
                "/v2/models/{name}/versions/{version}/infer",
                V1_TARGET,
            ],
        );
        let label = |method: Method, path: &str| routes.labels[routes.route(&method, path).0].route;
        // Only a POST to the plain inference route is answered past the router, with the
        // model its path names.
        let model = |method: Method, path: &str| routes.route(&method, path).1;
        assert_eq!(
            model(Method::POST, "/v2/models/m/infer").as_deref(),
            Some("m")
        );
        assert_eq!(model(Method::GET, "/v2/models/m/infer"), None);
        assert_eq!(model(Method::POST, "/v2/models/m/versions/3/infer"), None);
        assert_eq!(model(Method::POST, "/v1/models/m:predict"), None);
        for (method, path, expected) in [
            (
                Method::POST,
                "/v2/models/m/infer",
                "/v2/models/{name}/infer",
            ),
            (Method::GET, "/v2/models/m/infer", "/v2/models/{name}/infer"),
            (Method::GET, "/v2/models/m", "/v2/models/{name}"),
            (
                Method::POST,
                "/v2/models/m/versions/3/infer",
                "/v2/models/{name}/versions/{version}/infer",
            ),
            (Method::POST, "/v1/models/m:predict", V1_PREDICT),
            (Method::GET, "/v1/models/m", V1_STATUS),
            (Method::GET, "/v2/models/m/infer/", UNMATCHED),
            (Method::GET, "/nothing", UNMATCHED),
            (Method::GET, "", UNMATCHED),
        ] {
            assert_eq!(label(method.clone(), path), expected, "{method} {path}");
        }
    }

    #[test]
    fn answers_are_counted_by_label_and_code_and_timed() {
        let metrics = Arc::new(Metrics::default());
        let routes = Routes::new(metrics.clone(), ["/v2/models/{name}/infer"]);
        let infer = routes.route(&Method::POST, "/v2/models/m/infer").0;
        routes.record(infer, 200, Duration::from_micros(300));
        routes.record(infer, 200, Duration::from_millis(2));
        routes.record(infer, 400, Duration::from_micros(100));
        let text = metrics.encode();
        for line in [
            r#"ciclo_serve_requests_total{route="/v2/models/{name}/infer",code="200"} 2"#,
            r#"ciclo_serve_requests_total{route="/v2/models/{name}/infer",code="400"} 1"#,
            r#"ciclo_serve_request_duration_seconds_count{route="/v2/models/{name}/infer"} 3"#,
            r#"ciclo_serve_request_duration_seconds_bucket{le="0.0005",route="/v2/models/{name}/infer"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("unmatched"), "{text}");
    }
}

//! `ciclo ui`: a read-only web view of the cycle in the user's browser, served on 127.0.0.1
//! by the `ciclo` binary with the user's kubeconfig, so the user's own RBAC applies and
//! nothing is installed in the cluster.
//!
//! Steps, one module each: [`guard`] lets in only the browser that opened the printed
//! address → [`cluster`] keeps a watch and a store per kind → each page renders from the
//! stores on the server (HTML, charts as SVG: no JavaScript library, no CDN) inside
//! [`layout`]'s frame → [`live`] tells open pages when something changed, and they fetch
//! their content again.

mod chart;
mod cluster;
mod dataset;
mod deployment;
mod guard;
mod layout;
mod lineage;
mod live;
mod model;
mod overview;
mod profiles;
mod traffic;

use crate::get::Scope;
use crate::one_line::one_line;
use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cluster::Cluster;
use guard::{Guard, Verdict};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `ciclo ui`. As `ciclo get`: the namespace comes from where kubectl takes it.
#[derive(clap::Args, Debug)]
pub struct UiArgs {
    /// The namespace; default: the kubeconfig context's namespace, as kubectl.
    #[arg(short, long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The port on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// What every handler reads.
struct Ui {
    cluster: Cluster,
    profiles: profiles::Profiles,
    /// The user's client, for what the watches do not hold (the serving pods' metrics).
    client: kube::Client,
    traffic: traffic::Traffic,
}

/// Serves the view until Ctrl-C or SIGTERM. It prints the address to open (with its token)
/// on stdout, as its one line there.
pub fn run(args: &UiArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = async {
            let client = kube::Client::try_default()
                .await
                .context("loading the Kubernetes configuration (kubeconfig or in-cluster)")?;
            let scope = match (&args.namespace, args.all_namespaces) {
                (_, true) => Scope::All,
                (Some(ns), false) => Scope::Namespace(ns.clone()),
                (None, false) => Scope::Namespace(client.default_namespace().to_string()),
            };
            // Only loopback: the view acts with the user's credentials.
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
                .await
                .with_context(|| format!("listening on 127.0.0.1:{}", args.port))?;
            anyhow::Ok((client, scope, listener))
        };
        let (client, scope, listener) = match started.await {
            Ok(started) => started,
            Err(e) => {
                eprintln!("error: {}", one_line(&e));
                if let Some(hint) = crate::get::hint(&e) {
                    eprintln!("hint: {hint}");
                }
                return Ok(ExitCode::FAILURE);
            }
        };
        let guard = Guard::new(listener.local_addr()?.port())?;
        let ui = Arc::new(Ui {
            cluster: Cluster::watch(&client, scope),
            profiles: profiles::Profiles::default(),
            client: client.clone(),
            traffic: traffic::Traffic::default(),
        });
        println!("{}", guard.url());
        eprintln!(
            "ciclo ui: open the address above (it carries the view's token); Ctrl-C stops it"
        );
        axum::serve(listener, router(ui, guard))
            .with_graceful_shutdown(crate::get::stopped())
            .await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn router(ui: Arc<Ui>, guard: Guard) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/datasets/{namespace}/{dataset}", get(dataset_page))
        .route(
            "/deployments/{namespace}/{deployment}",
            get(deployment_page),
        )
        .route("/models/{namespace}/{model}", get(model_page))
        .route("/lineage", get(lineage_page))
        .route("/events", get(live::events))
        .route("/style.css", get(|| asset("text/css", layout::STYLE)))
        .route("/live.js", get(|| asset("text/javascript", layout::LIVE)))
        .with_state(ui)
        .layer(middleware::from_fn_with_state(Arc::new(guard), admit))
}

/// Lets a request through [`Guard`], and adds the headers every answer carries.
async fn admit(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let mut response = match guard.judge(request.uri(), request.headers()) {
        Verdict::Allow => next.run(request).await,
        Verdict::SetCookie { location } => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, location),
                (header::SET_COOKIE, guard.cookie()),
            ],
        )
            .into_response(),
        Verdict::Refuse(status, why) => (status, why).into_response(),
    };
    let headers = response.headers_mut();
    // Only this origin's own files; no page of another origin may frame this one.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A version id (a content digest) as people read it: its first 12 characters.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Objects as a page reads them from a store that holds every one (for tests).
#[cfg(test)]
fn all<K>(objects: Vec<K>) -> Result<Vec<Arc<K>>, cluster::Health> {
    Ok(objects.into_iter().map(Arc::new).collect())
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn model_page(
    State(ui): State<Arc<Ui>>,
    Path((namespace, name)): Path<(String, String)>,
) -> maud::Markup {
    let c = &ui.cluster;
    let (versions, deployments) = (c.model_versions.objects(), c.model_deployments.objects());
    let model = model::Model {
        namespace: &namespace,
        name: &name,
        versions: &versions,
        deployments: &deployments,
    };
    layout::page(
        &format!("Model {name}"),
        &c.scope,
        model::render(&model, jiff::Timestamp::now()),
    )
}

/// The object a page shows, from its watch's cache; or the page saying it is not there (or
/// cannot be read: not listed yet, forbidden).
fn found<K: kube::Resource<DynamicType = ()> + Clone + 'static>(
    c: &Cluster,
    watched: &cluster::Watched<K>,
    title: &str,
    kind: (&str, &str),
    namespace: &str,
    name: &str,
) -> Result<Arc<K>, maud::Markup> {
    match watched.get(namespace, name) {
        Ok(Some(obj)) => Ok(obj),
        found => {
            let found = found.as_ref().map(|_| ());
            let body = overview::missing(title, kind, namespace, name, found);
            Err(layout::page(title, &c.scope, body))
        }
    }
}

async fn dataset_page(
    State(ui): State<Arc<Ui>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(choice): Query<dataset::Choice>,
) -> maud::Markup {
    let c = &ui.cluster;
    let title = format!("Dataset {name}");
    let kind = ("Dataset", "datasets");
    let ds = match found(c, &c.datasets, &title, kind, &namespace, &name) {
        Ok(ds) => ds,
        Err(missing) => return missing,
    };
    let all = dataset::versions(&ds);
    let shown = dataset::pick(&all, &ds, choice.version.as_deref());
    let base = choice
        .base
        .as_deref()
        .and_then(|b| dataset::pick(&all, &ds, Some(b)));
    let read = async |v: Option<&ciclo_api::dataset::DatasetVersion>| match v?.location.as_deref() {
        Some(location) => Some(ui.profiles.get(location).await),
        None => None,
    };
    // The two versions' profiles from the store at once.
    let (shown_read, base_read) = futures::join!(read(shown), read(base));
    let page = dataset::Page {
        namespace: &namespace,
        name: &name,
        dataset: &ds,
        shown: shown.map(|v| (v, shown_read)),
        base: base.map(|v| (v, base_read)),
    };
    layout::page(
        &title,
        &c.scope,
        dataset::render(&page, jiff::Timestamp::now()),
    )
}

async fn deployment_page(
    State(ui): State<Arc<Ui>>,
    Path((namespace, name)): Path<(String, String)>,
) -> maud::Markup {
    let c = &ui.cluster;
    let title = format!("Deployment {name}");
    let kind = ("ModelDeployment", "model deployments");
    let md = match found(c, &c.model_deployments, &title, kind, &namespace, &name) {
        Ok(md) => md,
        Err(missing) => return missing,
    };
    let events = c.deployment_events.objects();
    let traffic = ui.traffic.read(&ui.client, &md).await;
    let page = deployment::Page {
        namespace: &namespace,
        name: &name,
        deployment: &md,
        events: &events,
        traffic: &traffic,
    };
    layout::page(
        &title,
        &c.scope,
        deployment::render(&page, jiff::Timestamp::now()),
    )
}

async fn lineage_page(State(ui): State<Arc<Ui>>) -> maud::Markup {
    let c = &ui.cluster;
    let (versions, deployments) = (c.model_versions.objects(), c.model_deployments.objects());
    layout::page(
        "Lineage",
        &c.scope,
        lineage::render(&c.datasets.objects(), &versions, &deployments),
    )
}

async fn overview(State(ui): State<Arc<Ui>>) -> maud::Markup {
    let c = &ui.cluster;
    let snapshot = overview::Snapshot {
        datasets: c.datasets.objects(),
        training_runs: c.training_runs.objects(),
        model_versions: c.model_versions.objects(),
        model_deployments: c.model_deployments.objects(),
    };
    layout::page(
        "Overview",
        &c.scope,
        overview::render(&snapshot, jiff::Timestamp::now()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    /// A view over a cluster that cannot be reached (nothing listens on port 9).
    async fn app() -> Router {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let ui = Arc::new(Ui {
            cluster: Cluster::watch(&client, Scope::Namespace("ml".into())),
            profiles: profiles::Profiles::default(),
            client: client.clone(),
            traffic: traffic::Traffic::default(),
        });
        router(ui, Guard::with_token(8123, "s3cret".into()))
    }

    fn get(uri: &str, cookie: Option<&str>) -> Request {
        let mut r = Request::get(uri).header(header::HOST, "127.0.0.1:8123");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        r.body(Body::empty()).unwrap()
    }

    async fn body(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_token_opens_the_view_and_every_answer_forbids_other_origins() {
        let app = app().await;
        let first = app
            .clone()
            .oneshot(get("/?token=s3cret", None))
            .await
            .unwrap();
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        assert_eq!(first.headers()[header::LOCATION], "/");
        let cookie = first.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("ciclo-ui-token=s3cret;"), "{cookie}");

        let page = app
            .clone()
            .oneshot(get("/", Some("ciclo-ui-token=s3cret")))
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        let html = body(page).await;
        assert!(
            html.contains("Needs attention") && html.contains("in namespace ml"),
            "{html}"
        );
        assert!(html.contains("src=\"/live.js\""));

        let model = app
            .clone()
            .oneshot(get("/models/ml/iris", Some("ciclo-ui-token=s3cret")))
            .await
            .unwrap();
        assert_eq!(model.status(), StatusCode::OK);
        let html = body(model).await;
        assert!(html.contains("Model iris"), "{html}");
        assert!(
            html.contains("model versions"),
            "the cluster cannot be reached here: the page says so: {html}"
        );

        let script = app
            .clone()
            .oneshot(get("/live.js", Some("ciclo-ui-token=s3cret")))
            .await
            .unwrap();
        assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript");
        assert!(body(script).await.contains("EventSource(\"/events\")"));
    }

    #[tokio::test]
    async fn without_the_token_nothing_is_served_not_even_the_script() {
        let app = app().await;
        for path in ["/", "/events", "/live.js", "/style.css"] {
            let r = app.clone().oneshot(get(path, None)).await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
            assert!(!body(r).await.contains("ciclo-ui-token"), "{path}");
        }
        let rebound = Request::get("/?token=s3cret")
            .header(header::HOST, "attacker.example:8123")
            .body(Body::empty())
            .unwrap();
        let r = app.oneshot(rebound).await.unwrap();
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    }
}

//! The server's life: listen at once (so liveness answers while the model loads), load and
//! verify the model, become ready; on the stop signal drain, then end. A model that cannot be
//! loaded or fails its digest ends the server with the error: it never becomes ready.

use crate::args::{Format, ServeArgs};
use crate::capture::{self, Capture};
use crate::errors::ApiError;
use crate::state::State;
use crate::track::{Routes, Track, V1_TARGET};
use crate::{Error, drain, feedback, grpc, load, v1, v2};
use axum::Router;
use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bound server that has not loaded its model yet.
pub struct Server {
    listener: TcpListener,
    /// The gRPC port's listener, when asked for.
    grpc: Option<TcpListener>,
    state: Arc<State>,
    uri: String,
    digest: Option<String>,
    format: Format,
    /// ONNX Runtime's library, when given.
    onnxruntime: Option<std::path::PathBuf>,
    drain: Duration,
    /// Where captured requests go, when asked for.
    capture: Option<capture::Settings>,
    /// The training data's profile, for skew counts.
    baseline: Option<String>,
}

impl Server {
    /// Checks the flags and listens; the model is loaded by [`Server::run`].
    pub async fn bind(args: &ServeArgs) -> Result<Server, Error> {
        let format = Format::choose(args.model_format.as_deref(), &args.model_uri)
            .map_err(Error::Invalid)?;
        let digest = args
            .model_digest
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(load::expected_digest)
            .transpose()?;
        let name = args.model_name.trim();
        if name.is_empty() || name.contains(['/', ':']) {
            return Err(Error::Invalid(format!(
                "--model-name {name:?} must be non-empty, without '/' or ':'"
            )));
        }
        if args.max_concurrent_requests == 0 {
            return Err(Error::Invalid(
                "--max-concurrent-requests must be at least 1 (0 would refuse every inference request)".into(),
            ));
        }
        let capture = args
            .capture_uri
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(|uri| capture_settings(uri, args))
            .transpose()?;
        let addr = SocketAddr::new(args.address, args.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let grpc = match args.grpc_port {
            Some(port) => {
                let addr = SocketAddr::new(args.address, port);
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| Error::Bind { addr, source })?,
                )
            }
            None => None,
        };
        let version = args.model_version.clone().filter(|v| !v.trim().is_empty());
        Ok(Server {
            listener,
            grpc,
            state: Arc::new(State::new(
                name.into(),
                version,
                args.max_body_bytes,
                args.max_concurrent_requests,
            )),
            uri: args.model_uri.clone(),
            digest,
            format,
            onnxruntime: args.onnxruntime.clone(),
            drain: Duration::from_secs(args.drain_seconds),
            capture,
            baseline: args
                .baseline_profile
                .clone()
                .filter(|u| !u.trim().is_empty()),
        })
    }

    /// The address it listens on (with `--port 0`, the port chosen).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The gRPC port's address, when it serves gRPC.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `stop` resolves and the drain ends, or until the model fails to load.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let Server {
            listener,
            grpc,
            state,
            uri,
            digest,
            format,
            onnxruntime,
            drain,
            capture,
            baseline,
        } = self;
        tracing::info!(address = %listener.local_addr().map_err(Error::Serve)?, model = %uri, format = format.name(), "listening; loading the model");
        let failed = Arc::new(tokio::sync::Notify::new());
        let shutdown = {
            let (state, failed) = (state.clone(), failed.clone());
            async move {
                tokio::select! {
                    () = drain::drained(stop, state, drain) => {}
                    () = failed.notified() => {}
                }
            }
        };
        // Both ports stop together: the drain (or a failed load) ends them.
        let (stopped, _) = tokio::sync::watch::channel(false);
        let stopping = {
            let stopped = stopped.clone();
            async move {
                shutdown.await;
                stopped.send_replace(true);
            }
        };
        let until_stopped = move || {
            let mut watching = stopped.subscribe();
            async move {
                let _ = watching.wait_for(|s| *s).await;
            }
        };
        let writer = capture.map(|settings| {
            tracing::info!(prefix = %settings.prefix, ratio = settings.ratio, "capturing requests");
            let (capture, writer) = Capture::start(settings, state.metrics.capture.clone());
            let _ = state.capture.set(capture);
            writer
        });
        let app = router(state.clone());
        let grpc = grpc.map(|listener| {
            let address = listener.local_addr().ok();
            tracing::info!(address = ?address, "serving gRPC (inference.GRPCInferenceService)");
            let service = grpc::service(state.clone(), state.max_body_bytes);
            let stop = until_stopped();
            tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming(listener), stop)
                    .await
                    .map_err(|e| Error::Serve(std::io::Error::other(e)))
            })
        });
        let http_stop = until_stopped();
        let mut serving = tokio::spawn(async move {
            tokio::spawn(stopping);
            let served = axum::serve(listener, axum::ServiceExt::into_make_service(app))
                .with_graceful_shutdown(http_stop)
                .await
                .map_err(Error::Serve);
            if let Some(grpc) = grpc {
                joined(grpc.await)?;
            }
            served
        });
        let loaded = tokio::select! {
            loaded = load::load(&uri, digest.as_deref(), format, onnxruntime) => loaded,
            // Stopped while loading.
            served = &mut serving => return joined(served),
        };
        match loaded {
            Ok((runtime, digest)) => {
                tracing::info!(model = %state.name, version = state.version.as_deref().unwrap_or(""), %digest, "loaded and verified");
                let profile = match &baseline {
                    Some(uri) => read_profile(uri).await,
                    None => None,
                };
                state.set_loaded(runtime, format, digest, profile.as_ref());
            }
            Err(e) => {
                tracing::error!("{e}");
                failed.notify_one();
                let _ = serving.await;
                return Err(e);
            }
        }
        let served = joined(serving.await);
        // Every request is answered: what they queued is written before the process ends.
        if let Some(writer) = writer {
            writer.finish().await;
        }
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The capture flags, checked: a ratio from 0 to 1, a store that can be opened.
fn capture_settings(uri: &str, args: &ServeArgs) -> Result<capture::Settings, Error> {
    if !(0.0..=1.0).contains(&args.capture_ratio) {
        return Err(Error::Invalid(format!(
            "--capture-ratio {} is not between 0 and 1",
            args.capture_ratio
        )));
    }
    if args.capture_max_rows == 0
        || args.capture_queue == 0
        || args.capture_flush_seconds == 0
        || args.capture_retention_days == Some(0)
    {
        return Err(Error::Invalid(
            "--capture-max-rows, --capture-queue, --capture-flush-seconds and --capture-retention-days must be at least 1"
                .into(),
        ));
    }
    let options = ciclo_store::Options {
        env_prefix: ciclo_core::contract::ARTIFACTS_ENV_PREFIX.into(),
        ..ciclo_store::Options::default()
    };
    let (store, prefix) = ciclo_store::open(uri, &options)
        .map_err(|e| Error::Invalid(format!("--capture-uri {uri}: {e}")))?;
    // The pod's name, so the pods of a deployment never write the same file.
    let instance = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| format!("ciclo-serve-{}", std::process::id()));
    Ok(capture::Settings {
        store,
        prefix,
        ratio: args.capture_ratio,
        flush: Duration::from_secs(args.capture_flush_seconds),
        max_rows: args.capture_max_rows,
        queue: args.capture_queue,
        instance,
        privacy: privacy(args)?,
        retention: args
            .capture_retention_days
            .map(|days| Duration::from_secs(u64::from(days) * 86_400)),
    })
}

/// The columns left out and hashed, and the hashes' key (from the environment only: a flag
/// would show it in the process list).
fn privacy(args: &ServeArgs) -> Result<capture::Privacy, Error> {
    let names = |list: &[String]| -> Arc<[String]> {
        list.iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let hash = names(&args.capture_hash);
    let secret = std::env::var(CAPTURE_HASH_KEY).unwrap_or_default();
    if !hash.is_empty() && secret.is_empty() {
        return Err(Error::Invalid(format!(
            "--capture-hash {} needs the key in {CAPTURE_HASH_KEY} (a ModelDeployment's spec.capture.hashKeySecretRef)",
            hash.join(",")
        )));
    }
    Ok(capture::Privacy {
        exclude: names(&args.capture_exclude),
        hash,
        key: capture::Privacy::key_of(secret.as_bytes()),
    })
}

/// The environment variable holding the key of `--capture-hash`.
const CAPTURE_HASH_KEY: &str = "CICLO_CAPTURE_HASH_KEY";

/// The gRPC port's connections, each with Nagle's algorithm off: tonic sets TCP_NODELAY only
/// on listeners it binds itself, and with it on, a small answer waited for the client's
/// delayed ACK (about 40 ms a call with a client that sends its request in two writes).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

fn joined(served: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    served.map_err(|e| Error::Serve(std::io::Error::other(e)))?
}

/// Every route, each answer counted and timed.
fn router(state: Arc<State>) -> Track<Router> {
    let metrics = state.metrics.clone();
    let routes = [
        ("/v2", get(v2::server_metadata)),
        ("/v2/health/live", get(v2::live)),
        ("/v2/health/ready", get(v2::ready)),
        ("/v2/models/{name}", get(v2::model_metadata)),
        ("/v2/models/{name}/ready", get(v2::model_ready)),
        ("/v2/models/{name}/infer", post(v2::infer)),
        ("/v2/models/{name}/feedback", post(feedback::feedback)),
        (
            "/v2/models/{name}/versions/{version}",
            get(v2::model_metadata),
        ),
        (
            "/v2/models/{name}/versions/{version}/ready",
            get(v2::model_ready),
        ),
        (
            "/v2/models/{name}/versions/{version}/infer",
            post(v2::infer),
        ),
        ("/v1/models", get(v1::list)),
        (V1_TARGET, get(v1::status).post(v1::predict)),
        ("/metrics", get(metrics_text)),
    ];
    let labels = Routes::new(metrics, routes.iter().map(|(path, _)| *path));
    let router = routes
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state.clone());
    Track::new(router, labels, state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn metrics_text(axum::extract::State(state): axum::extract::State<Arc<State>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// The training data's profile at `uri`, or none and a warning saying why.
async fn read_profile(uri: &str) -> Option<ciclo_profile::Profile> {
    let profile = match load::fetch(uri).await {
        Ok(bytes) => serde_json::from_slice::<ciclo_profile::Profile>(&bytes)
            .map_err(|e| format!("not a dataset profile: {e}")),
        Err(e) => Err(e.to_string()),
    };
    profile
        .inspect_err(|e| {
            tracing::warn!(profile = %uri, "the training data's profile: {e}; serving without skew counts")
        })
        .ok()
}

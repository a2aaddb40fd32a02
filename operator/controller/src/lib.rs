//! `ciclo operator`: one controller per kind in one process, leader-elected on a Lease, with
//! Prometheus metrics, health endpoints and structured logs.
//!
//! Each reconciler is a pipeline of small steps — resolve references → validate → build the
//! desired state → apply → status — where only the ends touch the API; the middle steps are
//! pure functions tested from inline YAML.
#![forbid(unsafe_code)]

mod api_requests;
mod args;
mod context;
mod controllers;
mod error;
mod http;
mod leader;
mod metrics;
mod own_writes;
mod status;
mod telemetry;

pub use args::OperatorArgs;

/// A serving pod's traffic read as the canary analysis reads it (its runtime's metric
/// names, the p99 from two samples' histograms), for `ciclo ui`'s deployment page.
pub mod serving_traffic {
    pub use crate::controllers::model_deployment::analysis::p99_text;
    pub use crate::controllers::model_deployment::traffic::Reader;
}

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    let args = args.with_unique_identity();
    telemetry::init(args.log_json);
    install_crypto_provider();
    let metrics = Arc::new(metrics::Metrics::default());
    // kube's default client stack, with every request counted for `ciclo_kube_requests_total`.
    let client = kube::client::ClientBuilder::try_from(kube::Config::infer().await?)?
        .with_layer(&api_requests::CountRequestsLayer::new(
            metrics.kube_requests.clone(),
        ))
        .build();
    let shutdown = CancellationToken::new();
    let state = http::State::new(metrics.clone());
    let server = tokio::spawn(http::serve(
        args.metrics_bind_address,
        state.clone(),
        shutdown.clone(),
    ));
    let streaming_lists = streaming_lists(&client).await;
    let ctx = Arc::new(context::Context::new(
        client.clone(),
        metrics,
        &args,
        streaming_lists,
    ));
    state.set_ready();
    tracing::info!(identity = %args.identity(), namespaces = ?args.watch_namespaces, "ciclo operator starting");

    let elector = tokio::spawn(leader::run(ctx, args.clone(), shutdown.clone()));
    wait_for_signal().await?;
    tracing::info!("shutting down: stopping controllers and releasing leadership");
    shutdown.cancel();
    elector.await??;
    server.await??;
    Ok(())
}

/// Whether the API server streams watches' first lists ([`context::streams_lists`]), asked
/// once at start (a few tries: the operator can do nothing without the API server anyway).
/// Unknown after that: paged lists, which every server serves.
async fn streaming_lists(client: &kube::Client) -> bool {
    for attempt in 1..=5 {
        match client.apiserver_version().await {
            Ok(version) => {
                let streaming = context::streams_lists(&version);
                tracing::info!(version = %version.git_version, streaming_lists = streaming, "API server");
                return streaming;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "reading the API server's version failed");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
    false
}

/// rustls needs one process-wide crypto provider; which ones are compiled in depends on the
/// whole build's features, so choose explicitly rather than hope exactly one is there.
pub(crate) fn install_crypto_provider() {
    // Err only means one is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

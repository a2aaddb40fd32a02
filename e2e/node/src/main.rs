//! `ciclo-node`: a Kubernetes node without a container runtime.
//!
//! It registers a Node, keeps its Lease, and runs every Pod the scheduler binds to it as
//! host processes, each pod on its own loopback address. See `docs/process-node.md`.
#![forbid(unsafe_code)]

mod args;
mod container;
mod env;
mod images;
mod ipam;
mod kubelet_api;
mod lease;
mod node;
mod pod;
mod probe;
mod runner;
mod spec_check;
mod status;
mod volumes;
mod worker;

use anyhow::Context as _;
use clap::Parser as _;
use kube::runtime::events::Reporter;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The argument that turns the binary into the container wrapper (see `container`).
pub const RUN_CONTAINER: &str = "run-container";

fn main() -> anyhow::Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == RUN_CONTAINER) {
        // The wrapper runs before exec() of the workload: single-threaded, no runtime, no
        // logging, and none of the node's flags.
        let spec = argv
            .get(2)
            .ok_or_else(|| anyhow::anyhow!("{RUN_CONTAINER} needs a spec path"))?;
        return container::exec_from_spec(std::path::Path::new(spec));
    }
    let args = args::NodeArgs::parse_from(argv);
    tokio::runtime::Runtime::new()?.block_on(run_node(args))
}

async fn run_node(args: args::NodeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;

    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&args.kubeconfig)
            .with_context(|| format!("reading {}", args.kubeconfig.display()))?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    std::fs::create_dir_all(&args.state_dir)?;
    let ctx = Arc::new(pod::NodeContext::new(client.clone(), &args)?);

    let shutdown = CancellationToken::new();
    node::register(&client, &args)
        .await
        .context("registering the Node")?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(node::heartbeat(
        client.clone(),
        args.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(lease::renew(
        client.clone(),
        args.node_name.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(kubelet_api::serve(
        args.clone(),
        ctx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(pod::manage(ctx.clone(), shutdown.clone()));
    tracing::info!(node = %args.node_name, "process node running");

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping every pod"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping every pod"),
        Some(res) = tasks.join_next() => {
            tracing::error!(?res, "a node task ended; stopping");
        }
    }
    shutdown.cancel();
    ctx.stop_all_pods().await;
    tasks.abort_all();
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn,hyper=warn,rustls=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The name the node reports its events under, as a kubelet does.
pub fn reporter(node_name: &str) -> Reporter {
    Reporter {
        controller: "kubelet".into(),
        instance: Some(node_name.into()),
    }
}

//! `ciclo`: one binary, its subcommands are the parts (see `ciclo --help`).
#![forbid(unsafe_code)]

mod dataset;
#[cfg(test)]
mod fake_api;
mod get;
mod lineage;
mod one_line;
mod train;
mod ui;

use clap::Parser as _;
use std::process::ExitCode;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(clap::Parser)]
#[command(
    name = "ciclo",
    version,
    about = "ciclo: the machine-learning development cycle on Kubernetes"
)]
enum Cli {
    /// Print every CustomResourceDefinition of the ciclo.dev API as YAML.
    Crds,
    /// Run the controllers (leader-elected), with metrics and health endpoints.
    Operator(ciclo_controller::OperatorArgs),
    /// Dataset commands (run by the operator as Jobs, or by hand).
    #[command(subcommand)]
    Dataset(dataset::Dataset),
    /// Train a model on one dataset version with the built-in trainer (run by the operator
    /// as a TrainingRun's Job; every flag also comes from the workload contract's variables).
    Train(ciclo_train::TrainArgs),
    /// Serve a model over the Open Inference Protocol (and KServe v1) with Prometheus metrics
    /// (run by the operator in a ModelDeployment's pods; every flag also comes from a
    /// `CICLO_…` variable). Listens on 127.0.0.1 unless `--address` says otherwise.
    Serve(ciclo_serve::ServeArgs),
    /// Print a model version's lineage: dataset version → run → model version → deployments.
    Lineage(lineage::LineageArgs),
    /// Show datasets, training runs, model versions and deployments with their conditions,
    /// once or live (`--watch`).
    Get(get::GetArgs),
    /// Serve a read-only web view of the cycle on 127.0.0.1 (datasets, runs, model
    /// versions, deployments), with your kubeconfig's credentials; open the address it prints.
    Ui(ui::UiArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    // Two rustls crypto providers are compiled in (object_store brings aws-lc-rs), so none is
    // the default: choose one before any subcommand opens a TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse() {
        Cli::Crds => {
            print!("{}", ciclo_api::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Cli::Operator(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(ciclo_controller::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Cli::Dataset(command) => dataset::run(command),
        Cli::Train(args) => train::run(&args),
        Cli::Serve(args) => {
            let runtime = ciclo_serve::serving_runtime()?;
            // A model that cannot be loaded or verified is an error: a non-zero exit.
            runtime.block_on(ciclo_serve::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Cli::Lineage(args) => lineage::run(&args),
        Cli::Get(args) => get::run(&args),
        Cli::Ui(args) => ui::run(&args),
    }
}

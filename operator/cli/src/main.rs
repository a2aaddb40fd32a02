//! `ciclo`: one binary, its subcommands are the parts (see `ciclo --help`).
#![forbid(unsafe_code)]

use clap::Parser as _;

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
}

fn main() -> anyhow::Result<()> {
    // Two rustls crypto providers are compiled in (object_store brings aws-lc-rs), so none is
    // the default: choose one before any subcommand opens a TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse() {
        Cli::Crds => {
            print!("{}", ciclo_api::crds_yaml());
            Ok(())
        }
        Cli::Operator(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(ciclo_controller::run(args))
        }
    }
}

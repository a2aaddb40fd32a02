//! `ciclo dataset …`: the data-plane commands the Dataset controller runs as Jobs, and that
//! also run by hand against any store.

use ciclo_core::contract::TERMINATION_MESSAGE_PATH;
use ciclo_core::snapshot_result::Outcome;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Dataset {
    /// Check a dataset's source once: version it by content, profile and validate a new
    /// version, write manifest.json, profile.json and report.json to the artifact store,
    /// and print the summary (also the container's termination message).
    Snapshot {
        #[command(flatten)]
        args: ciclo_snapshot::check::CheckArgs,
        /// Where to leave the summary for Kubernetes; written only if the file exists (the
        /// kubelet creates it), so a run by hand never writes to /dev.
        #[arg(long, default_value = TERMINATION_MESSAGE_PATH)]
        termination_message_path: PathBuf,
    },
}

/// Runs the command; a check that could not run to the end exits 1.
pub fn run(command: Dataset) -> anyhow::Result<std::process::ExitCode> {
    let Dataset::Snapshot {
        args,
        termination_message_path,
    } = command;
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Pod logs are files: no colour codes in them.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(ciclo_snapshot::check::run(&args));
    let message = summary.to_termination_message();
    println!("{message}");
    if termination_message_path.exists() {
        std::fs::write(&termination_message_path, &message)?;
    }
    if let Some(failure) = &summary.failure {
        tracing::error!(reason = ?failure.reason, "{}", failure.message);
    }
    Ok(if summary.outcome == Outcome::Failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

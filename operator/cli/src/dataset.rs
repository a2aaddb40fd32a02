//! `ciclo dataset …`: the data-plane commands the Dataset controller runs as Jobs, and that
//! also run by hand against any store.

use ciclo_core::contract::TERMINATION_MESSAGE_PATH;
use ciclo_core::snapshot_result::Outcome;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only complicate the flags"
)]
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
    /// Print the version id of the data at a source (hashing every file, nothing else), and
    /// with `--manifest` every file's path, size and hash: which version a copy holds.
    Id {
        /// The data: `s3://bucket/prefix`, `file:///dir`, … (credentials as for `snapshot`).
        #[arg(long)]
        source: String,
        #[arg(long)]
        source_endpoint: Option<String>,
        #[arg(long)]
        source_region: Option<String>,
        #[arg(long)]
        source_force_path_style: bool,
        /// Globs a file must match (repeatable); none: every file.
        #[arg(long)]
        include: Vec<String>,
        /// Globs of files to leave out (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
        /// Print the whole manifest too.
        #[arg(long)]
        manifest: bool,
    },
}

/// Runs the command; a check that could not run to the end exits 1.
pub fn run(command: Dataset) -> anyhow::Result<std::process::ExitCode> {
    let (args, termination_message_path) = match command {
        Dataset::Snapshot {
            args,
            termination_message_path,
        } => (args, termination_message_path),
        Dataset::Id {
            source,
            source_endpoint,
            source_region,
            source_force_path_style,
            include,
            exclude,
            manifest,
        } => {
            let options = ciclo_snapshot::source::Options {
                endpoint: source_endpoint,
                region: source_region,
                force_path_style: source_force_path_style,
                env_prefix: ciclo_snapshot::source::SOURCE_ENV_PREFIX.into(),
                ..Default::default()
            };
            let selection = ciclo_snapshot::select::Selection::new(&include, &exclude)
                .map_err(anyhow::Error::msg)?;
            let (store, prefix) =
                ciclo_snapshot::source::open(&source, &options).map_err(anyhow::Error::msg)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let snap = runtime.block_on(ciclo_snapshot::snapshot(
                store,
                &prefix,
                &selection,
                None,
                ciclo_snapshot::source::reads_for(&source),
            ))?;
            let mut out = serde_json::json!({
                "id": snap.manifest.version_id(),
                "files": snap.manifest.files.len(),
                "bytes": snap.manifest.total_bytes(),
            });
            if manifest {
                out["manifest"] = serde_json::to_value(&snap.manifest)?;
            }
            println!("{out}");
            return Ok(std::process::ExitCode::SUCCESS);
        }
    };
    init_logs();
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

/// Logs of a data-plane command: to stderr, plain text (pod logs are files: no colour codes).
pub fn init_logs() {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

//! `ciclo train`: the built-in trainer, as a TrainingRun's Job runs it.

use ciclo_core::contract::TERMINATION_MESSAGE_PATH;
use ciclo_core::train_result::TrainOutcome;
use std::path::Path;
use std::process::ExitCode;

/// Trains once; prints the summary and leaves it as the termination message (when the
/// kubelet made that file), exiting 1 when no model was written.
pub fn run(args: &ciclo_train::TrainArgs) -> anyhow::Result<ExitCode> {
    crate::dataset::init_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(ciclo_train::run(args));
    let message = summary.to_termination_message();
    println!("{message}");
    if Path::new(TERMINATION_MESSAGE_PATH).exists() {
        std::fs::write(TERMINATION_MESSAGE_PATH, &message)?;
    }
    if let Some(f) = &summary.failure {
        tracing::error!(reason = ?f.reason, "{}", f.message);
    }
    Ok(if summary.outcome == TrainOutcome::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

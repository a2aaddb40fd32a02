//! Stopping without dropping requests. Kubernetes sends SIGTERM and, at about the same time,
//! starts removing the pod from the Service's endpoints, which every node learns of a little
//! later. So on SIGTERM the server says it is not ready at once, keeps serving every request,
//! new connections included, for the drain period, then stops accepting, lets the requests in
//! flight finish, and exits 0.

use crate::Error;
use crate::state::State;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Resolves on SIGTERM or Ctrl-C. The handler is installed now, so a signal that comes while
/// the model loads is not the default "die at once".
pub fn termination() -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Resolves when the server should stop accepting connections: `drain` after `stop`, during
/// which it is not ready.
pub(crate) async fn drained(stop: impl Future<Output = ()>, state: Arc<State>, drain: Duration) {
    stop.await;
    state.start_draining();
    tracing::info!(
        seconds = drain.as_secs_f64(),
        "draining: not ready, still serving"
    );
    tokio::time::sleep(drain).await;
    tracing::info!("drained: finishing the requests in flight");
}

//! Live updates: `/events` is a server-sent event stream that says `changed` after each
//! change in the cluster (a burst of changes within [`SETTLE`] once), and every page's script
//! fetches its content again when it hears it.

use super::Ui;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How long a burst of changes (a reconcile writes several objects in a row) may go on
/// before the pages hear of it: also the shortest time between two updates.
const SETTLE: Duration = Duration::from_millis(300);

/// The event stream of one open page.
pub async fn events(
    State(ui): State<Arc<Ui>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut changes = ui.cluster.changes.clone();
    // What the page was rendered from is seen: only later changes are news.
    changes.borrow_and_update();
    let stream = futures::stream::unfold(changes, |mut changes| async move {
        // Ends with the process (its sender is dropped).
        changes.changed().await.ok()?;
        tokio::time::sleep(SETTLE).await;
        let n = *changes.borrow_and_update();
        Some((
            Ok(Event::default().event("changed").data(n.to_string())),
            changes,
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

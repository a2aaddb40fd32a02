//! `ciclo get --watch`: a watcher and a reflector store per kind; every change marks the view
//! dirty, and it is drawn again once the burst has settled ([`DEBOUNCE`]), so a reconcile
//! that writes five objects in a row gives one new table, not five.

use super::fetch::{Watchable, api};
use super::frame::{Frames, write_stdout};
use super::summary::{Summarize, Summary, sort};
use super::{Kind, Scope, View};
use ciclo_api::{Dataset, ModelDeployment, ModelVersion, TrainingRun};
use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt as _, future};
use jiff::Timestamp;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource};
use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::time::Duration;
use tokio::time::Instant;

/// How long a burst of changes may go on before the table is drawn: also the shortest time
/// between two tables.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// On a terminal, the table is also redrawn this often, so its AGE column keeps up.
const AGE_REFRESH: Duration = Duration::from_secs(15);

/// What a kind's watch reports.
enum Signal {
    /// The kind's store holds every object (after the first list, or a relist).
    Ready(Kind),
    /// An object was added, changed or deleted.
    Changed,
}

/// Prints `first` (the objects as just listed), then a new table after each change until
/// Ctrl-C or SIGTERM (Ok: an ordinary end), or until stdout is gone.
pub async fn run(client: Client, view: &View, first: Vec<Summary>) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut frames = Frames::new(tty);
    // Ages keep up on a terminal; JSON lines and piped tables only follow changes.
    let refresh_ages = tty && view.output != super::Output::Json;
    let mut draw = |summaries: Vec<Summary>| match frames.next(view, summaries, Timestamp::now()) {
        Some(text) => write_stdout(&text),
        None => true,
    };
    if !draw(first) {
        return Ok(());
    }
    let (stores, mut signals) = Stores::watch(&client, view);
    let stop = stopped();
    tokio::pin!(stop);
    let mut ready = BTreeSet::new();
    let mut due: Option<Instant> = None;
    let mut refresh = tokio::time::interval_at(Instant::now() + AGE_REFRESH, AGE_REFRESH);
    let mut last_error = String::new();
    loop {
        let all_ready = ready.len() == view.kinds.len();
        tokio::select! {
            () = &mut stop => return Ok(()),
            signal = signals.next() => match signal {
                Some(Ok(signal)) => {
                    if let Signal::Ready(kind) = signal {
                        ready.insert(kind);
                    }
                    due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                }
                // The watcher retries by itself (with backoff); say so once per new error.
                Some(Err(e)) => {
                    let e = e.to_string();
                    if e != last_error {
                        eprintln!("warning: watching {}: {e} (retrying)", view.scope.words());
                        last_error = e;
                    }
                }
                None => return Ok(()),
            },
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() && all_ready => {
                due = None;
                last_error.clear();
                if !draw(stores.summaries()) {
                    return Ok(());
                }
            }
            _ = refresh.tick(), if refresh_ages && all_ready => {
                if !draw(stores.summaries()) {
                    return Ok(());
                }
            }
        }
    }
}

/// The reflector store of each watched kind.
#[derive(Default)]
struct Stores {
    datasets: Option<Store<Dataset>>,
    training_runs: Option<Store<TrainingRun>>,
    model_versions: Option<Store<ModelVersion>>,
    model_deployments: Option<Store<ModelDeployment>>,
}

impl Stores {
    /// Starts a watch per kind of the view; their signals come merged into one stream.
    fn watch(
        client: &Client,
        view: &View,
    ) -> (
        Stores,
        SelectAll<BoxStream<'static, Result<Signal, watcher::Error>>>,
    ) {
        let mut stores = Stores::default();
        let mut signals = SelectAll::new();
        for &kind in &view.kinds {
            let scope = &view.scope;
            signals.push(match kind {
                Kind::Dataset => watch_kind(client, scope, kind, &mut stores.datasets),
                Kind::TrainingRun => watch_kind(client, scope, kind, &mut stores.training_runs),
                Kind::ModelVersion => watch_kind(client, scope, kind, &mut stores.model_versions),
                Kind::ModelDeployment => {
                    watch_kind(client, scope, kind, &mut stores.model_deployments)
                }
            });
        }
        (stores, signals)
    }

    /// Every object in the stores, summarised and sorted.
    fn summaries(&self) -> Vec<Summary> {
        fn of<K: Summarize + Resource + Clone>(store: &Option<Store<K>>) -> Vec<Summary>
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store.as_ref().map_or_else(Vec::new, |s| {
                s.state().iter().map(|o| o.summarize()).collect()
            })
        }
        let mut out = of(&self.datasets);
        out.extend(of(&self.training_runs));
        out.extend(of(&self.model_versions));
        out.extend(of(&self.model_deployments));
        sort(&mut out);
        out
    }
}

/// Watches kind `K` into a new store (put in `slot`); the stream says when the store is
/// complete and when it changed.
fn watch_kind<K>(
    client: &Client,
    scope: &Scope,
    kind: Kind,
    slot: &mut Option<Store<K>>,
) -> BoxStream<'static, Result<Signal, watcher::Error>>
where
    K: Watchable,
{
    let (store, writer) = reflector::store();
    *slot = Some(store);
    watcher(api::<K>(client, scope), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .filter_map(move |event| {
            future::ready(match event {
                Ok(watcher::Event::InitDone) => Some(Ok(Signal::Ready(kind))),
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    Some(Ok(Signal::Changed))
                }
                // A relist in progress: the store changes only at its InitDone.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
                Err(e) => Some(Err(e)),
            })
        })
        .boxed()
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

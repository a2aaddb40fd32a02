//! What `ciclo ui` shows, kept current: a watch and a reflector store per kind, read with the
//! user's credentials. Each kind keeps its own state, so one the user may not read (a Role
//! without `list` on ModelVersions) is a "forbidden" on its part of a page, while the rest
//! shows. Every change moves [`Cluster::changes`] on, which the pages' live updates follow.

use crate::get::Scope;
use crate::get::fetch::{Watchable, api};
use ciclo_api::{Dataset, ModelDeployment, ModelVersion, TrainingRun};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Where a kind's watch is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// The first list is not in yet.
    Loading,
    /// The store holds every object (the watch goes on).
    Ready,
    /// The API server refuses to list the kind to this user (403).
    Forbidden(String),
    /// Anything else (unreachable, the CRD missing): the watch retries by itself.
    Failing(String),
}

/// One kind: its store and where its watch is.
pub struct Watched<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    state: Arc<Mutex<State>>,
}

#[derive(Clone)]
struct State {
    health: Health,
    /// Whether a first list ever came in: after that, a failing watch still has every object
    /// it saw.
    listed: bool,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Watched<K> {
    /// The objects, once the store holds every one; else why not, for the page to say.
    pub fn objects(&self) -> Result<Vec<Arc<K>>, Health> {
        let state = self.state.lock().expect("state lock").clone();
        if state.listed {
            Ok(self.store.state())
        } else {
            Err(state.health)
        }
    }

    /// The object `namespace`/`name` (`None`: there is none), once the store holds every
    /// one; else why not.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Option<Arc<K>>, Health> {
        let state = self.state.lock().expect("state lock").clone();
        if state.listed {
            Ok(self
                .store
                .get(&reflector::ObjectRef::new(name).within(namespace)))
        } else {
            Err(state.health)
        }
    }
}

/// Every kind the view shows.
pub struct Cluster {
    pub scope: Scope,
    pub datasets: Watched<Dataset>,
    pub training_runs: Watched<TrainingRun>,
    pub model_versions: Watched<ModelVersion>,
    pub model_deployments: Watched<ModelDeployment>,
    /// The Events of ModelDeployments (their rollouts' steps, promotions and rollbacks).
    pub deployment_events: Watched<Event>,
    /// Counts changes (any kind): a page's live updates wait for it to move.
    pub changes: watch::Receiver<u64>,
}

impl Cluster {
    /// Starts the watches (they run until the process ends).
    pub fn watch(client: &Client, scope: Scope) -> Cluster {
        let (tx, changes) = watch::channel(0);
        let tx = Arc::new(tx);
        let all = watcher::Config::default;
        Cluster {
            datasets: start(client, &scope, all(), &tx),
            training_runs: start(client, &scope, all(), &tx),
            model_versions: start(client, &scope, all(), &tx),
            model_deployments: start(client, &scope, all(), &tx),
            deployment_events: start(
                client,
                &scope,
                all().fields("involvedObject.kind=ModelDeployment"),
                &tx,
            ),
            scope,
            changes,
        }
    }
}

fn start<K>(
    client: &Client,
    scope: &Scope,
    config: watcher::Config,
    changes: &Arc<watch::Sender<u64>>,
) -> Watched<K>
where
    K: Watchable,
{
    let (store, writer) = reflector::store();
    let state = Arc::new(Mutex::new(State {
        health: Health::Loading,
        listed: false,
    }));
    let events = watcher(api::<K>(client, scope), config)
        .default_backoff()
        .reflect(writer);
    let (shared, changes) = (state.clone(), changes.clone());
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let next = match &event {
                Ok(watcher::Event::InitDone) => Some(Health::Ready),
                Ok(_) => None,
                Err(e) => Some(judge_error(e)),
            };
            let moved = match next {
                Some(next) => {
                    let mut state = shared.lock().expect("state lock");
                    state.listed |= next == Health::Ready;
                    let moved = state.health != next;
                    state.health = next;
                    moved
                }
                None => matches!(
                    event,
                    Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))
                ),
            };
            if moved {
                changes.send_modify(|n| *n += 1);
            }
        }
    });
    Watched { store, state }
}

/// A 403 is the user's permissions, said as such; anything else is a failure the watch
/// retries.
fn judge_error(e: &watcher::Error) -> Health {
    let api_status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => Some(s),
        _ => None,
    };
    match api_status {
        Some(s) if s.code == 403 => Health::Forbidden(s.message.clone()),
        _ => Health::Failing(e.to_string()),
    }
}

//! One controller per kind, run together while this replica leads.

mod artifact_store;
mod data_source;
mod dataset;
pub(crate) mod model_deployment;
pub mod model_version;
mod pod_security;
mod registry;
mod slim;
mod training_run;
mod workload;

use crate::context::Context;
use crate::error::Error;
use futures::StreamExt as _;
use kube::api::Api;
use kube::core::{DeserializeGuard, NamespaceResourceScope};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs every controller until `stop`: once over all namespaces, or once per watched
/// namespace. Per namespace, not one watch over a list: a namespaced install has Roles only,
/// and the API serves a cluster-wide watch to a ClusterRole alone.
pub async fn run_all(ctx: Arc<Context>, stop: CancellationToken) {
    let scopes: Vec<Arc<Context>> = if ctx.watch_namespaces.is_empty() {
        vec![ctx]
    } else {
        ctx.watch_namespaces
            .iter()
            .map(|ns| Arc::new(ctx.in_namespace(ns)))
            .collect()
    };
    futures::future::join_all(scopes.into_iter().map(|ctx| run_scope(ctx, stop.clone()))).await;
    tracing::info!("controllers stopped");
}

/// Every controller over one scope (a namespace, or all of them).
async fn run_scope(ctx: Arc<Context>, stop: CancellationToken) {
    tracing::info!(namespace = ?ctx.namespace, "starting controllers");
    // The TrainingRuns, watched and cached once (slim: their names) for their controller and
    // for the ModelDeployment controller (which reads who produces a model).
    let mut runs = Shared::new(&ctx, training_run::cached::strip);
    let (for_deployments, runs_store) = (runs.subscribe(), runs.store.clone());
    let (runs_controller, runs_feed) = runs.into_controller();
    tokio::join!(
        dataset::run(ctx.clone(), stop.clone()),
        training_run::run(ctx.clone(), runs_controller, stop.clone()),
        model_version::run(ctx.clone(), stop.clone()),
        model_deployment::run(ctx.clone(), (runs_store, for_deployments), stop.clone()),
        // Ends with the controllers: once neither reads its changes, its stream is dropped.
        async {
            tokio::select! {
                () = runs_feed => {}
                () = stop.cancelled() => {}
            }
        },
    );
}

/// How every controller watches: any resource version (the API server's cache), so restarts
/// and re-lists do not load etcd.
pub fn watch_config() -> kube::runtime::watcher::Config {
    kube::runtime::watcher::Config::default().any_semantic()
}

/// How a watch gets its first list: streamed as watch events where the API server can
/// (`sendInitialEvents`), so the operator holds one object at a time instead of a whole list.
/// A list read from the API server's cache (`resourceVersion=0`, as [`watch_config`] asks)
/// comes in one response whatever the page size: 10,000 Jobs at once.
fn initial_list(
    ctx: &Context,
    config: kube::runtime::watcher::Config,
) -> kube::runtime::watcher::Config {
    if ctx.streaming_lists {
        config.streaming_lists()
    } else {
        config
    }
}

/// A namespaced kind a controller watches or caches.
pub trait Watched:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A controller over `K` in the watched namespace(s), reading objects through the guard.
///
/// Its cache keeps the objects without `metadata.managedFields`: no reconcile reads them,
/// and as parsed JSON trees they were the largest part of a cached object (a cache of 1000
/// TrainingRuns held ~9 MiB more with them). `None`, not an empty list: an object written
/// back from the cache must not reset them.
pub fn controller<K>(ctx: &Context) -> kube::runtime::Controller<DeserializeGuard<K>>
where
    K: Watched,
{
    controller_stripped(ctx, |_| {})
}

/// [`controller`], whose cache also drops what `strip` removes from each readable object:
/// for a kind that is never pruned (ModelVersions, the registry), the memory per object is
/// what the cache costs. Reconciles see the stripped object, so `strip` keeps all they read,
/// and they never write a whole object back.
pub fn controller_stripped<K>(
    ctx: &Context,
    strip: fn(&mut K),
) -> kube::runtime::Controller<DeserializeGuard<K>>
where
    K: Watched,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let config = initial_list(ctx, watch_config());
    let objects = kube::runtime::watcher(api::<DeserializeGuard<K>>(ctx), config)
        .default_backoff()
        .modify(move |obj| {
            unread_metadata(obj.meta_mut());
            if let Ok(k) = obj.0.as_mut() {
                strip(k);
            }
        });
    let objects = kube::runtime::reflector(writer, objects).applied_objects();
    kube::runtime::Controller::for_stream(objects, reader)
}

/// How many changes of a shared cache wait for its slowest reader before the watch waits.
const SHARED_BUFFER: usize = 256;

/// One watch and one cache of `K` (readable objects as [`controller`] keeps them) for the
/// controller of `K` and for other controllers that read `K` too: each object is held once,
/// however many controllers read it, and each reader is handed every applied object (not a
/// deletion). The feed must run for any of them to see anything.
///
/// Not kube's shared reflector (`store_shared` and its `ReflectHandle`): a handle looks each
/// change up in the store when it is read, and when the object was deleted in between it
/// returns `Pending` without asking to be woken, so that reader never sees another change,
/// and once the buffer is full the watch itself stops. Here a reader is handed the object.
pub struct Shared<K: Watched> {
    pub store: Store<DeserializeGuard<K>>,
    writer: kube::runtime::reflector::store::Writer<DeserializeGuard<K>>,
    readers: Vec<futures::channel::mpsc::Sender<Arc<DeserializeGuard<K>>>>,
    /// Drops what no reader reads, as [`cache`]'s `strip`.
    strip: fn(&mut K),
    ctx: Arc<Context>,
}

/// The changes of a [`Shared`] cache, for one reader.
pub type Subscription<K> = futures::channel::mpsc::Receiver<Arc<DeserializeGuard<K>>>;

impl<K: Watched> Shared<K> {
    pub fn new(ctx: &Arc<Context>, strip: fn(&mut K)) -> Self {
        let (store, writer) = kube::runtime::reflector::store();
        Shared {
            store,
            writer,
            readers: Vec::new(),
            strip,
            ctx: ctx.clone(),
        }
    }

    /// The changes, for a reader other than `K`'s controller.
    pub fn subscribe(&mut self) -> Subscription<K> {
        let (tx, rx) = futures::channel::mpsc::channel(SHARED_BUFFER);
        self.readers.push(tx);
        rx
    }

    /// `K`'s controller over this cache, and the feed: the watch that fills the cache and
    /// hands the changes to every reader, to run beside the controllers.
    pub fn into_controller(
        mut self,
    ) -> (
        kube::runtime::Controller<DeserializeGuard<K>>,
        impl std::future::Future<Output = ()> + Send,
    ) {
        let controller =
            kube::runtime::Controller::for_shared_stream(self.subscribe(), self.store.clone());
        let config = initial_list(&self.ctx, watch_config());
        let strip = self.strip;
        let events = kube::runtime::watcher(api::<DeserializeGuard<K>>(&self.ctx), config)
            .default_backoff()
            .modify(move |obj| {
                unread_metadata(obj.meta_mut());
                if let Ok(k) = obj.0.as_mut() {
                    strip(k);
                }
            });
        (controller, fan_out(events, self.writer, self.readers))
    }
}

/// Applies each watch event to the cache, then hands what changed to every reader: an
/// applied object, or every object once a (re)list is in. A deletion is handed to no one (as
/// kube's own shared streams do; a controller finds the object gone from its cache).
async fn fan_out<K>(
    events: impl futures::Stream<
        Item = Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
    >,
    mut writer: kube::runtime::reflector::store::Writer<K>,
    mut readers: Vec<futures::channel::mpsc::Sender<Arc<K>>>,
) where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    use futures::SinkExt as _;
    use kube::runtime::reflector::Lookup as _;
    use kube::runtime::watcher::Event;
    let store = writer.as_reader();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                continue;
            }
        };
        writer.apply_watcher_event(&event);
        let changed = match &event {
            Event::Apply(obj) => store.get(&obj.to_object_ref(())).into_iter().collect(),
            Event::InitDone => store.state(),
            Event::Delete(_) | Event::Init | Event::InitApply(_) => Vec::new(),
        };
        for obj in changed {
            for reader in &mut readers {
                // A reader gone (its controller stopped) just misses it.
                let _ = reader.send(obj.clone()).await;
            }
        }
    }
}

/// A cache of `K` in the watched namespace(s) (a reflector store, kept by one watch with
/// `config`), and the stream of its changes to wake a controller with (`owns_stream`,
/// `watches_stream`): reconciles read what they need from the cache instead of asking the
/// API server each time. `strip` drops what no reconcile reads, so the cache's memory per
/// object stays small; it sees the object's `managedFields`, which are dropped after it.
/// The objects of the first list wake nothing ([`changes_after_first_list`]).
pub fn cache<K>(
    ctx: &Context,
    config: kube::runtime::watcher::Config,
    strip: fn(&mut K),
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send + 'static,
)
where
    K: Watched,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let changes = kube::runtime::watcher(api::<K>(ctx), initial_list(ctx, config))
        .default_backoff()
        .modify(move |obj| {
            drop_last_applied(obj.meta_mut());
            strip(obj);
            obj.meta_mut().managed_fields = None;
        })
        .reflect(writer);
    (reader, changes_after_first_list(changes))
}

/// The objects of a cache's watch events that wake a controller: every object applied or
/// deleted (a child's deletion wakes its owner), and every object of a relist (what changed
/// while the watch was down is among them), but none of the first list.
///
/// Every controller reconciles all its own objects when it starts, each once its caches hold
/// their first lists, so waking an owner for each of its children then adds nothing but
/// queued requests: after a restart at 10,000 TrainingRuns, each queued twice (by itself
/// and by its Job, which names the Job it came from), the queue alone weighed megabytes.
fn changes_after_first_list<K: Send>(
    events: impl futures::Stream<
        Item = Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
    > + Send,
) -> impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send {
    use futures::TryStreamExt as _;
    use kube::runtime::watcher::Event;
    let mut listed = false;
    events
        .map_ok(move |event| match event {
            Event::Apply(obj) | Event::Delete(obj) => Some(obj),
            Event::InitApply(obj) => listed.then_some(obj),
            Event::InitDone => {
                listed = true;
                None
            }
            Event::Init => None,
        })
        .try_filter_map(futures::future::ok)
}

/// Drops from a cached object's metadata what no reconcile reads and what can be larger than
/// the rest of it: `managedFields`, and the copy of the whole object `kubectl apply` (client
/// side) keeps in an annotation. `None`, not an empty list: an object written back from the
/// cache must not reset them.
pub(crate) fn unread_metadata(meta: &mut kube::api::ObjectMeta) {
    meta.managed_fields = None;
    drop_last_applied(meta);
}

/// Drops the copy of the whole object `kubectl apply` (client side) keeps in an annotation.
fn drop_last_applied(meta: &mut kube::api::ObjectMeta) {
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// When caches are ready (their first list is in), for any number of reconciles to await at
/// once. Not `Store::wait_until_ready` from each reconcile: its one-shot channel keeps a
/// single waker, so of several reconciles waiting together only the last one to look was
/// woken and the others waited forever (seen after a leader change, when every object is
/// reconciled at once). A shared future wakes every waiter.
pub type Ready = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// The moment every store in `stores` is ready.
pub fn ready(stores: Vec<futures::future::BoxFuture<'static, ()>>) -> Ready {
    use futures::FutureExt as _;
    futures::future::join_all(stores)
        .map(|_| ())
        .boxed()
        .shared()
}

/// How often a wait for a cache looks again whether it is ready (see [`store_ready`]).
const CACHE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a cache may take to get its first list before the operator says so.
const CACHE_SLOW: std::time::Duration = std::time::Duration::from_secs(20);

/// The moment `store` is ready, for [`ready`]. (An error means the cache's writer is gone with
/// its controller: nothing more will be read from it either way.)
///
/// It looks again every second instead of trusting the store's wake-up: another task may
/// wait on the same store (kube's runner waits for a controller's store before its first
/// reconcile, and the TrainingRun cache is shared with the ModelDeployment controller), and
/// the store's one-shot channel wakes only the last task that looked. The ModelDeployment
/// controller waited forever that way after an upgrade, in the middle of a canary step.
pub fn store_ready<K>(store: &Store<K>) -> futures::future::BoxFuture<'static, ()>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    use futures::FutureExt as _;
    let store = store.clone();
    async move {
        let started = tokio::time::Instant::now();
        let mut warned = false;
        while tokio::time::timeout(CACHE_RECHECK, store.wait_until_ready())
            .await
            .is_err()
        {
            // Reconciles wait for it: say which cache holds them up.
            if !warned && started.elapsed() >= CACHE_SLOW {
                warned = true;
                tracing::warn!(
                    kind = %K::kind(&()),
                    waited = ?started.elapsed(),
                    "a cache has not had its first list yet; reconciles that read it wait"
                );
            }
        }
    }
    .boxed()
}

/// The objects in `store` in namespace `ns` that `keep` selects. Selected before they are
/// cloned: a reconcile copies what concerns it, not the whole namespace (at 1000
/// ModelDeployments, copying every serving pod and version in each reconcile took the
/// operator from under 100 MiB to 230 MiB on a restart).
pub fn in_namespace<K>(store: &Store<K>, ns: &str, keep: impl Fn(&K) -> bool) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state_filter(|o| o.namespace().as_deref() == Some(ns) && keep(o))
        .iter()
        .map(|o| (**o).clone())
        .collect()
}

/// The objects in `store` in namespace `ns` that carry label `key=value` and that `owner`
/// controls (a same-named object deleted and created again owns none of its predecessor's).
pub fn owned_by<K, O>(store: &Store<K>, ns: &str, key: &str, value: &str, owner: &O) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
    O: Resource,
{
    let uid = owner.meta().uid.as_ref();
    store
        .state_filter(|o| {
            o.namespace().as_deref() == Some(ns)
                && o.labels().get(key).map(String::as_str) == Some(value)
                && o.owner_references().iter().any(|r| Some(&r.uid) == uid)
        })
        .iter()
        .map(|o| (**o).clone())
        .collect()
}

/// Runs `controller` with `reconcile` (behind [`guarded`] and [`error_policy`]) until `stop`.
pub async fn run_until<K, F, Fut>(
    kind: &'static str,
    controller: kube::runtime::Controller<DeserializeGuard<K>>,
    reconcile: F,
    ctx: Arc<Context>,
    stop: CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    F: Fn(Arc<Context>, K) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    let config =
        kube::runtime::controller::Config::default().concurrency(ctx.max_concurrent_reconciles);
    let metrics = ctx.clone();
    let stream = controller
        .with_config(config)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(
            move |g, c| guarded(kind, g, c, reconcile.clone()),
            error_policy(kind),
            ctx,
        );
    // A deleted object is never reconciled: the controller reports it not found instead.
    drain(kind, stream, |gone| {
        let ns = gone.namespace.as_deref().unwrap_or_default();
        crate::status::forget(&metrics, kind, ns, &gone.name);
    })
    .await;
}

/// An Api over `K` in the watched namespace, or all namespaces.
pub fn api<K>(ctx: &Context) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &ctx.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

/// What every reconcile does around its kind-specific steps: unwrap the deserialisation
/// guard (a malformed object is reported, never stalls the watch), count and time the
/// reconcile, and reset the object's back-off on success.
pub async fn guarded<K, F, Fut>(
    kind: &'static str,
    guard: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug,
    F: FnOnce(Arc<Context>, K) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    let _timer = ctx.metrics.reconcile_started(kind);
    let key = format!("{kind}/{}", guard.namespace().unwrap_or_default()) + "/" + &guard.name_any();
    let obj = match &guard.0 {
        Ok(obj) => obj.clone(),
        Err(invalid) => {
            report_malformed::<K>(&ctx, kind, &guard, &invalid.error).await;
            return Ok(Action::await_change());
        }
    };
    tracing::debug!(object = %key, "reconciling");
    let result = reconcile(ctx.clone(), obj).await;
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// Retries a failed reconcile with per-object exponential back-off and jitter.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    kind: &'static str,
) -> impl Fn(Arc<DeserializeGuard<K>>, &Error, Arc<Context>) -> Action {
    move |guard, error, ctx| {
        ctx.metrics.reconcile_failed(kind, error.metric_label());
        let key =
            format!("{kind}/{}", guard.namespace().unwrap_or_default()) + "/" + &guard.name_any();
        let delay = ctx.backoff(&key);
        tracing::warn!(%kind, object = %key, %error, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }
}

pub(crate) async fn report_malformed<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    kind: &'static str,
    guard: &DeserializeGuard<K>,
    error: &str,
) {
    ctx.metrics.reconcile_failed(kind, "malformed");
    tracing::warn!(%kind, name = %guard.name_any(), namespace = ?guard.namespace(), %error, "malformed object skipped");
    let note = format!("ciclo cannot read this {kind}: {error}");
    ctx.publish(
        &guard.object_ref(&()),
        EventType::Warning,
        "InvalidObject",
        &note,
        "Reconcile",
    )
    .await;
}

/// Logs the outcome of each reconcile the controller runs.
pub async fn drain<K: Resource, S>(
    kind: &'static str,
    stream: S,
    gone: impl Fn(&ObjectRef<kube::api::DynamicObject>),
) where
    S: futures::Stream<
            Item = Result<
                (ObjectRef<K>, Action),
                kube::runtime::controller::Error<Error, kube::runtime::watcher::Error>,
            >,
        >,
{
    let gone = &gone;
    stream
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(%kind, object = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(%kind, object = %obj, "deleted");
                    gone(&obj);
                }
                Err(e) => tracing::warn!(%kind, error = %e, "controller event"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{FailureLabels, Metrics};
    use ciclo_api::Dataset;
    use k8s_openapi::api::batch::v1::Job;

    /// A context whose API calls fail fast: nothing listens on port 9 of loopback.
    fn offline_context() -> Arc<Context> {
        crate::install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let args = <crate::args::OperatorArgs as clap::FromArgMatches>::from_arg_matches(
            &<crate::args::OperatorArgs as clap::Args>::augment_args(clap::Command::new("t"))
                .get_matches_from(["t"]),
        )
        .unwrap();
        Arc::new(Context::new(
            client,
            Arc::new(Metrics::default()),
            &args,
            true,
        ))
    }

    #[tokio::test]
    async fn a_namespaced_context_watches_only_its_namespace() {
        let ctx = offline_context();
        assert_eq!(
            api::<Dataset>(&ctx).resource_url(),
            "/apis/ciclo.dev/v1alpha1/datasets",
            "no list of namespaces: every namespace"
        );
        let scoped = ctx.in_namespace("team-a");
        assert_eq!(
            api::<Dataset>(&scoped).resource_url(),
            "/apis/ciclo.dev/v1alpha1/namespaces/team-a/datasets"
        );
        assert_eq!(
            api::<Job>(&scoped).resource_url(),
            "/apis/batch/v1/namespaces/team-a/jobs",
            "the owned Jobs too"
        );
    }

    #[tokio::test]
    async fn a_malformed_object_is_reported_and_skipped_without_an_error() {
        let ctx = offline_context();
        // `interval` must be a string: this object cannot be read as a Dataset.
        let guard: DeserializeGuard<Dataset> = serde_json::from_value(serde_json::json!({
            "apiVersion": "ciclo.dev/v1alpha1", "kind": "Dataset",
            "metadata": {"name": "broken", "namespace": "ml"},
            "spec": {"source": {"uri": "s3://b/p"}, "interval": 5},
        }))
        .unwrap();
        assert!(guard.0.is_err());
        let mut called = false;
        let action = guarded("Dataset", Arc::new(guard), ctx.clone(), |_, _| {
            called = true;
            async { Ok(Action::await_change()) }
        })
        .await;
        assert!(
            action.is_ok(),
            "a malformed object must not fail the reconcile (no retry storm)"
        );
        assert!(!called, "the reconcile steps never see a malformed object");
        let failures = ctx
            .metrics
            .reconcile_failures
            .get_or_create(&FailureLabels {
                kind: "Dataset",
                error: "malformed",
            })
            .get();
        assert_eq!(failures, 1);
    }

    #[tokio::test]
    async fn every_reconcile_waiting_for_a_cache_goes_on_once_it_is_ready() {
        use kube::runtime::watcher::Event;
        let (reader, mut writer) = kube::runtime::reflector::store::<Job>();
        let ready = ready(vec![store_ready(&reader)]);
        let waiters: Vec<_> = (0..8).map(|_| tokio::spawn(ready.clone())).collect();
        tokio::task::yield_now().await;
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        for w in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("a waiter was never woken")
                .unwrap();
        }
    }

    /// The TrainingRun cache is waited on by its controller's runner (kube) and by the
    /// ModelDeployment controller's reconciles: the store wakes only the last task that
    /// looked, and the other must still go on.
    #[tokio::test]
    async fn a_wait_for_a_cache_goes_on_when_another_task_waits_on_it_too() {
        use kube::runtime::watcher::Event;
        let (reader, mut writer) = kube::runtime::reflector::store::<Job>();
        let ours = tokio::spawn(ready(vec![store_ready(&reader)]));
        tokio::task::yield_now().await;
        // Another task looks after ours: the store's channel now keeps only its waker.
        let other = reader.clone();
        let theirs = tokio::spawn(async move { other.wait_until_ready().await.is_ok() });
        tokio::task::yield_now().await;
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        assert!(theirs.await.unwrap());
        tokio::time::timeout(std::time::Duration::from_secs(10), ours)
            .await
            .expect("the first waiter was never woken")
            .unwrap();
    }

    fn named(name: &str) -> Job {
        Job {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ml".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A change whose object is deleted before its reader gets to it must not stop the
    /// reader: kube's shared handle stalled there for good.
    #[tokio::test]
    async fn a_reader_of_a_shared_cache_goes_on_past_an_object_deleted_before_it_read_it() {
        use kube::runtime::watcher::Event;
        let (store, writer) = kube::runtime::reflector::store::<Job>();
        let (tx, mut rx) = futures::channel::mpsc::channel(SHARED_BUFFER);
        let events = futures::stream::iter(
            [
                Event::Init,
                Event::InitDone,
                Event::Apply(named("a")),
                Event::Delete(named("a")),
                Event::Apply(named("b")),
            ]
            .map(Ok),
        );
        // The whole feed runs before the reader reads anything.
        fan_out(events, writer, vec![tx]).await;
        let seen: Vec<String> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            (&mut rx).map(|j| j.name_any()).collect::<Vec<_>>(),
        )
        .await
        .expect("the reader stalled");
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(store.state().len(), 1, "the cache holds b only");
    }

    /// A child cache's first list wakes no owner (each owner is reconciled when its
    /// controller starts); what comes after it, a relist included, does.
    #[tokio::test]
    async fn only_what_follows_a_caches_first_list_wakes_a_controller() {
        use kube::runtime::watcher::Event;
        let events = futures::stream::iter(
            [
                Event::Init,
                Event::InitApply(named("listed")),
                Event::InitDone,
                Event::Apply(named("changed")),
                Event::Delete(named("deleted")),
                Event::Init,
                Event::InitApply(named("relisted")),
                Event::InitDone,
            ]
            .map(Ok),
        );
        let woken: Vec<String> = changes_after_first_list(events)
            .map(|j: Result<Job, _>| j.unwrap().name_any())
            .collect()
            .await;
        assert_eq!(woken, ["changed", "deleted", "relisted"]);
    }

    /// A (re)list hands every object to the readers: that is how a controller starts.
    #[tokio::test]
    async fn a_list_hands_every_object_of_a_shared_cache_to_every_reader() {
        use kube::runtime::watcher::Event;
        let (_, writer) = kube::runtime::reflector::store::<Job>();
        let (tx1, rx1) = futures::channel::mpsc::channel(SHARED_BUFFER);
        let (tx2, rx2) = futures::channel::mpsc::channel(SHARED_BUFFER);
        let events = futures::stream::iter(
            [
                Event::Init,
                Event::InitApply(named("a")),
                Event::InitApply(named("b")),
                Event::InitDone,
            ]
            .map(Ok),
        );
        fan_out(events, writer, vec![tx1, tx2]).await;
        for rx in [rx1, rx2] {
            let mut seen: Vec<String> = rx.map(|j| j.name_any()).collect().await;
            seen.sort();
            assert_eq!(seen, ["a", "b"]);
        }
    }
}

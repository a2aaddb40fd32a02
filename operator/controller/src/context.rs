//! What every reconcile shares.

use crate::args::{ArtifactStoreArgs, OperatorArgs};
use crate::metrics::Metrics;
use crate::own_writes::OwnWrites;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Context {
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    /// Who publishes this process's Events (see [`Context::publish`]).
    reporter: Reporter,
    /// The namespace this context's controllers watch; all namespaces when unset.
    pub namespace: Option<String>,
    /// Every namespace the operator watches (empty: all); one set of controllers runs per
    /// namespace, each with a context scoped to it ([`Context::in_namespace`]).
    pub watch_namespaces: Vec<String>,
    /// The image of the Jobs ciclo runs itself.
    pub image: String,
    /// Where versions and their reports are kept.
    pub artifact_store: ArtifactStoreArgs,
    /// How many objects of one kind are reconciled at once (0: no limit).
    pub max_concurrent_reconciles: u16,
    /// Consecutive failures per object, for back-off.
    failures: Mutex<HashMap<String, u32>>,
    /// This process's status writes its caches have not seen yet (one map for all scopes).
    pub own_writes: Arc<OwnWrites>,
    /// Whether watches stream their first list (see [`streams_lists`]).
    pub streaming_lists: bool,
}

/// Whether an API server of `version` streams a watch's first list (`sendInitialEvents`,
/// the WatchList feature: beta and on by default from Kubernetes 1.34; it was on in 1.32 too
/// but off again in 1.33). Older servers refuse the parameter; they get paged lists.
pub fn streams_lists(version: &k8s_openapi::apimachinery::pkg::version::Info) -> bool {
    let number = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    };
    let (major, minor) = (number(&version.major), number(&version.minor));
    major > 1 || (major == 1 && minor >= 34)
}

/// Back-off of a failing object: 2 s doubling to 5 min, with ±20 % jitter so that many
/// objects failing together (an API outage) do not retry in lockstep.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The delay after `failures` consecutive failures, scaled by `jitter`.
fn backoff_delay(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
        .mul_f64(jitter)
}

impl Context {
    pub fn new(
        client: kube::Client,
        metrics: Arc<Metrics>,
        args: &OperatorArgs,
        streaming_lists: bool,
    ) -> Self {
        let reporter = Reporter {
            controller: "ciclo-operator".into(),
            instance: Some(args.identity()),
        };
        Self {
            reporter,
            client,
            metrics,
            namespace: None,
            watch_namespaces: args.watch_namespaces.clone(),
            image: args.image.clone(),
            artifact_store: args.artifact_store.clone(),
            max_concurrent_reconciles: args.max_concurrent_reconciles,
            failures: Mutex::new(HashMap::new()),
            own_writes: Arc::default(),
            streaming_lists,
        }
    }

    /// The same settings, for controllers that watch only `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Self {
        Self {
            client: self.client.clone(),
            metrics: self.metrics.clone(),
            reporter: self.reporter.clone(),
            namespace: Some(namespace.to_string()),
            watch_namespaces: self.watch_namespaces.clone(),
            image: self.image.clone(),
            artifact_store: self.artifact_store.clone(),
            max_concurrent_reconciles: self.max_concurrent_reconciles,
            failures: Mutex::new(HashMap::new()),
            own_writes: self.own_writes.clone(),
            streaming_lists: self.streaming_lists,
        }
    }

    /// The delay before retrying `key` after one more failure.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("failures lock");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n, rand::random_range(0.8..1.2))
    }

    /// Records an Event about `obj` (the note cut to the API's 1 kB); a failure to record
    /// is logged, never fails the reconcile that announces it.
    ///
    /// Each Event is created on its own, through a Recorder made for it. A shared kube
    /// Recorder keeps every Event it published in the last 6 minutes (dropped only at its next
    /// publish) to fold repeats into a series: 1000 TrainingRuns started at once left ~9 MiB
    /// of cached Events in the operator. And it folds little for ciclo: its key holds the
    /// object's resourceVersion, which the status write after each transition changes, and
    /// ciclo publishes on transitions only, so a true repeat is rare and costs one more Event.
    pub async fn publish(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
    ) {
        self.metrics.event_recorded(
            obj.namespace.as_deref().unwrap_or_default(),
            obj.kind.as_deref().unwrap_or_default(),
            reason,
            matches!(type_, EventType::Warning),
        );
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&event, obj).await {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }

    /// Forgets `key`'s failures after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_jitter_stays_within_a_fifth() {
        assert_eq!(backoff_delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(5, 1.0), Duration::from_secs(32));
        assert_eq!(backoff_delay(40, 1.0), BACKOFF_MAX);
        assert_eq!(backoff_delay(1, 0.8), Duration::from_millis(1600));
        assert_eq!(backoff_delay(40, 1.2), BACKOFF_MAX.mul_f64(1.2));
    }

    #[test]
    fn lists_are_streamed_from_kubernetes_1_34() {
        let info = |major: &str, minor: &str| k8s_openapi::apimachinery::pkg::version::Info {
            major: major.into(),
            minor: minor.into(),
            ..Default::default()
        };
        assert!(streams_lists(&info("1", "36")));
        assert!(streams_lists(&info("1", "34+")), "a provider's suffix");
        assert!(
            !streams_lists(&info("1", "33")),
            "WatchList was off by default in 1.33"
        );
        assert!(!streams_lists(&info("1", "29")));
        assert!(!streams_lists(&info("", "")), "unknown: paged lists");
    }
}

//! Prometheus metrics, prefixed `ciclo_`: reconcile runs, failures by kind and error, and a
//! duration histogram per kind, whether this replica leads, and the requests it made to the
//! Kubernetes API by verb and resource.

use crate::api_requests::RequestLabels;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkewLabels {
    pub namespace: String,
    pub name: String,
    pub feature: String,
}

pub struct Metrics {
    pub registry: Registry,
    /// The last measured skew of each feature of each ModelDeployment.
    pub skew: Family<SkewLabels, Gauge<f64, AtomicU64>>,
    pub reconcile_runs: Family<KindLabel, Counter>,
    pub reconcile_failures: Family<FailureLabels, Counter>,
    pub reconcile_duration: Family<KindLabel, Histogram>,
    pub leader: Gauge,
    /// Counted by [`crate::api_requests::CountRequestsLayer`] under the operator's client.
    pub kube_requests: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ciclo");
        let reconcile_runs = Family::<KindLabel, Counter>::default();
        let reconcile_failures = Family::<FailureLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let leader = Gauge::default();
        let kube_requests = Family::<RequestLabels, Counter>::default();
        let skew = Family::<SkewLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "model_deployment_skew",
            "The distance (spec.skew.measure) of each feature a ModelDeployment's serving \
             version received over the last measured window from the data it was trained on",
            skew.clone(),
        );
        registry.register(
            "reconcile_runs",
            "Reconciliations started",
            reconcile_runs.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciliations that failed, by error",
            reconcile_failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciliations took",
            reconcile_duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "kube_requests",
            "Requests this replica made to the Kubernetes API, by verb (get, list, watch, \
             create, update, patch, delete) and resource (plural/subresource). A watch counts \
             when it starts or restarts; a request the client retried counts once. Once every \
             object is reconciled, only the leader Lease's renewals (patch, leases) should grow",
            kube_requests.clone(),
        );
        Self {
            registry,
            skew,
            reconcile_runs,
            reconcile_failures,
            reconcile_duration,
            leader,
            kube_requests,
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `kind` and times it until the returned guard drops.
    pub fn reconcile_started(&self, kind: &'static str) -> ReconcileTimer<'_> {
        self.reconcile_runs.get_or_create(&KindLabel { kind }).inc();
        ReconcileTimer {
            metrics: self,
            kind,
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self, kind: &'static str, error: &'static str) {
        self.reconcile_failures
            .get_or_create(&FailureLabels { kind, error })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

/// Records the reconcile's duration when dropped, whichever way the reconcile ends.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&KindLabel { kind: self.kind })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

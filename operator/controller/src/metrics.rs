//! Prometheus metrics, prefixed `ciclo_`: reconcile runs, failures by kind and error, and a
//! duration histogram per kind, whether this replica leads, the requests it made to the
//! Kubernetes API by verb and resource, the Events it recorded, and the objects Stalled now —
//! what the chart's PrometheusRule alerts on.

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub namespace: String,
    pub kind: String,
    pub reason: String,
    /// `Normal` or `Warning`.
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StalledLabels {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
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
    /// Every Event recorded, by the involved object's namespace and kind, its reason and type.
    pub events: Family<EventLabels, Counter>,
    /// 1 for each object Stalled now (by its reason), while this replica leads; see
    /// [`Metrics::condition_seen`].
    stalled: Family<StalledLabels, Gauge>,
    /// The reason each stalled object is exported under, to remove its series when it changes.
    stalled_reasons: std::sync::Mutex<std::collections::HashMap<ObjectLabels, String>>,
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
        let events = Family::<EventLabels, Counter>::default();
        let stalled = Family::<StalledLabels, Gauge>::default();
        registry.register(
            "events",
            "Events the operator recorded, by the involved object's namespace and kind, the \
             Event's reason (RolledBack, VersionRejected, RunFailed, Skewed, …) and type \
             (Normal, Warning). A crash between an Event and its status write may count one twice",
            events.clone(),
        );
        registry.register(
            "stalled",
            "1 for each object whose Stalled condition is True, with its reason; exported by \
             the leader only, for the objects it has reconciled since it began to lead",
            stalled.clone(),
        );
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
            events,
            stalled,
            stalled_reasons: std::sync::Mutex::default(),
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

    /// Counts an Event recorded about an object of `kind` in `namespace`.
    pub fn event_recorded(&self, namespace: &str, kind: &str, reason: &str, warning: bool) {
        self.events
            .get_or_create(&EventLabels {
                namespace: namespace.into(),
                kind: kind.into(),
                reason: reason.into(),
                r#type: if warning { "Warning" } else { "Normal" },
            })
            .inc();
    }

    /// Exports whether `object` is Stalled now, and why (`None`: it is not, or it is gone).
    pub fn condition_seen(&self, object: ObjectLabels, stalled: Option<&str>) {
        let mut reasons = self.stalled_reasons.lock().expect("stalled lock");
        let labels = |reason: &str| StalledLabels {
            namespace: object.namespace.clone(),
            kind: object.kind.clone(),
            name: object.name.clone(),
            reason: reason.to_string(),
        };
        if let Some(old) = reasons.get(&object)
            && Some(old.as_str()) != stalled
        {
            self.stalled.remove(&labels(old));
        }
        match stalled {
            Some(reason) => {
                self.stalled.get_or_create(&labels(reason)).set(1);
                reasons.insert(object, reason.to_string());
            }
            None => {
                reasons.remove(&object);
            }
        }
    }

    /// Drops every Stalled series: a replica that no longer leads reconciles nothing, so what
    /// it exported would go stale (the new leader exports its own).
    pub fn stopped_leading(&self) {
        self.stalled.clear();
        self.stalled_reasons.lock().expect("stalled lock").clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> ObjectLabels {
        ObjectLabels {
            namespace: "team-a".into(),
            kind: "TrainingRun".into(),
            name: name.into(),
        }
    }

    fn stalled_lines(m: &Metrics) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with("ciclo_stalled{"))
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_stalled_object_is_one_series_with_its_current_reason_until_it_recovers() {
        let m = Metrics::default();
        m.condition_seen(object("a"), Some("RunFailed"));
        m.condition_seen(object("b"), None);
        assert_eq!(
            stalled_lines(&m),
            [
                r#"ciclo_stalled{namespace="team-a",kind="TrainingRun",name="a",reason="RunFailed"} 1"#
            ]
        );
        m.condition_seen(object("a"), Some("DatasetNotFound"));
        assert_eq!(
            stalled_lines(&m),
            [
                r#"ciclo_stalled{namespace="team-a",kind="TrainingRun",name="a",reason="DatasetNotFound"} 1"#
            ],
            "the old reason's series is gone"
        );
        m.condition_seen(object("a"), None);
        assert!(stalled_lines(&m).is_empty());
        m.condition_seen(object("c"), Some("RunFailed"));
        m.stopped_leading();
        assert!(stalled_lines(&m).is_empty());
    }

    #[test]
    fn events_are_counted_by_namespace_kind_reason_and_type() {
        let m = Metrics::default();
        m.event_recorded("team-a", "ModelDeployment", "RolledBack", true);
        m.event_recorded("team-a", "ModelDeployment", "RolledBack", true);
        m.event_recorded("team-b", "Dataset", "NewVersion", false);
        let text = m.encode();
        assert!(
            text.contains(r#"ciclo_events_total{namespace="team-a",kind="ModelDeployment",reason="RolledBack",type="Warning"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ciclo_events_total{namespace="team-b",kind="Dataset",reason="NewVersion",type="Normal"} 1"#),
            "{text}"
        );
    }

    /// The operator's metric families, each given a series so that it is in the text.
    fn exported_families() -> Vec<String> {
        let m = Metrics::default();
        drop(m.reconcile_started("Dataset"));
        m.reconcile_failed("Dataset", "forbidden");
        m.event_recorded("ns", "ModelDeployment", "RolledBack", true);
        m.condition_seen(object("a"), Some("RunFailed"));
        m.skew
            .get_or_create(&SkewLabels {
                namespace: "ns".into(),
                name: "md".into(),
                feature: "x".into(),
            })
            .set(0.1);
        m.kube_requests
            .get_or_create(&RequestLabels {
                verb: "get",
                resource: "trainingruns".into(),
            })
            .inc();
        m.encode()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(String::from)
            .collect()
    }

    /// Every `ciclo_…` family `text` names but the serving pods' (`ciclo_serve_…`).
    fn operator_names(text: &str) -> std::collections::BTreeSet<String> {
        let mut named = ciclo_core::prometheus_names::families(text, "ciclo_");
        named.retain(|n| !n.starts_with("ciclo_serve_"));
        named
    }

    #[test]
    fn every_metric_the_charts_alerts_name_is_one_the_operator_exports() {
        let rules = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/ciclo/files/prometheus-rules.yaml"
        ))
        .unwrap();
        let (named, families) = (operator_names(&rules), exported_families());
        assert!(named.len() >= 5, "{named:?}");
        for name in named {
            assert!(
                families.contains(&name),
                "the alerts name {name}, which the operator does not export ({families:?})"
            );
        }
    }

    #[test]
    fn every_operator_metric_the_grafana_dashboard_queries_is_one_it_exports() {
        let panels = ciclo_core::prometheus_names::dashboard_queries(include_str!(
            "../../../charts/ciclo/files/grafana-dashboard.json"
        ))
        .unwrap();
        let families = exported_families();
        let mut queried = std::collections::BTreeSet::new();
        for (title, queries) in panels {
            assert!(!queries.is_empty(), "panel {title} has no query");
            for name in queries.iter().flat_map(|q| operator_names(q)) {
                assert!(
                    families.contains(&name),
                    "panel {title} queries {name}, which the operator does not export ({families:?})"
                );
                queried.insert(name);
            }
        }
        for family in &families {
            assert!(queried.contains(family), "no panel shows {family}");
        }
    }
}

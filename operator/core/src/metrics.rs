//! Model metrics, which way is better, and the gates a model version must pass.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which way a metric improves.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Direction {
    /// Larger is better (accuracy, AUC, F1).
    Maximize,
    /// Smaller is better (loss, RMSE, latency).
    Minimize,
}

/// A metric the training workload reports, with the way it improves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Key of the metric in the workload's `metrics.json`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Whether larger or smaller values are better.
    pub direction: Direction,
}

/// A threshold a model version's metric must reach to be blessed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// The metric, which must be declared in `spec.metrics` (that gives its direction).
    #[schemars(length(min = 1, max = 63))]
    pub metric: String,
    /// At least this for a maximized metric, at most this for a minimized one.
    pub threshold: f64,
}

/// One gate's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateVerdict {
    /// The gated metric.
    pub metric: String,
    /// The threshold it was held to.
    pub threshold: f64,
    /// The metric's value, if the workload reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Whether the gate passed.
    pub passed: bool,
}

impl Direction {
    /// Whether `value` is at least as good as `reference`.
    pub fn at_least_as_good(self, value: f64, reference: f64) -> bool {
        match self {
            Direction::Maximize => value >= reference,
            Direction::Minimize => value <= reference,
        }
    }
}

/// Judges `metrics` against `gates`; a gate on a metric without a declared direction or
/// without a reported value fails.
pub fn judge(
    gates: &[Gate],
    declared: &[MetricSpec],
    metrics: &BTreeMap<String, f64>,
) -> Vec<GateVerdict> {
    gates
        .iter()
        .map(|g| {
            let value = metrics.get(&g.metric).copied().filter(|v| v.is_finite());
            let direction = declared.iter().find(|m| m.name == g.metric).map(|m| m.direction);
            let passed = matches!((value, direction), (Some(v), Some(d)) if d.at_least_as_good(v, g.threshold));
            GateVerdict { metric: g.metric.clone(), threshold: g.threshold, value, passed }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Vec<MetricSpec> {
        vec![
            MetricSpec {
                name: "accuracy".into(),
                direction: Direction::Maximize,
            },
            MetricSpec {
                name: "loss".into(),
                direction: Direction::Minimize,
            },
        ]
    }

    #[test]
    fn gates_respect_each_metrics_direction() {
        let gates = [
            Gate {
                metric: "accuracy".into(),
                threshold: 0.9,
            },
            Gate {
                metric: "loss".into(),
                threshold: 0.3,
            },
        ];
        let good = BTreeMap::from([("accuracy".into(), 0.93), ("loss".into(), 0.2)]);
        assert!(judge(&gates, &declared(), &good).iter().all(|v| v.passed));
        let bad = BTreeMap::from([("accuracy".into(), 0.93), ("loss".into(), 0.4)]);
        let verdicts = judge(&gates, &declared(), &bad);
        assert!(verdicts[0].passed && !verdicts[1].passed);
    }

    #[test]
    fn a_missing_or_non_finite_metric_fails_its_gate() {
        let gates = [Gate {
            metric: "accuracy".into(),
            threshold: 0.5,
        }];
        assert!(!judge(&gates, &declared(), &BTreeMap::new())[0].passed);
        let nan = BTreeMap::from([("accuracy".into(), f64::NAN)]);
        assert!(!judge(&gates, &declared(), &nan)[0].passed);
    }

    #[test]
    fn a_gate_on_an_undeclared_metric_fails() {
        let gates = [Gate {
            metric: "f1".into(),
            threshold: 0.5,
        }];
        let metrics = BTreeMap::from([("f1".into(), 0.9)]);
        assert!(!judge(&gates, &declared(), &metrics)[0].passed);
    }
}

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

/// What a model version's metric must reach to be blessed: a fixed `threshold`, or the
/// value of the baseline (the latest blessed earlier version of the same model) improved by
/// at least `minDelta` — exactly one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// The metric, which must be declared in `spec.metrics` (that gives its direction).
    #[schemars(length(min = 1, max = 63))]
    pub metric: String,
    /// At least this for a maximized metric, at most this for a minimized one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Must beat the baseline, the latest blessed earlier version of the same model (passes
    /// when there is none yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_beat_baseline: bool,
    /// How much better than the baseline, in the metric's direction (with
    /// `mustBeatBaseline`); 0 accepts an equal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub min_delta: Option<f64>,
}

/// The version a baseline gate compares with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// Its version number.
    pub version: i64,
    /// The metrics it was registered with.
    pub metrics: BTreeMap<String, f64>,
}

/// One gate's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateVerdict {
    /// The gated metric.
    pub metric: String,
    /// The value it was held to: the gate's threshold, or the baseline's value moved by
    /// `minDelta`; absent when there was nothing to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The baseline version compared with, for a `mustBeatBaseline` gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_version: Option<i64>,
    /// The metric's value, if the workload reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Whether the gate passed.
    pub passed: bool,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Direction {
    /// Whether `value` is at least as good as `reference`.
    pub fn at_least_as_good(self, value: f64, reference: f64) -> bool {
        match self {
            Direction::Maximize => value >= reference,
            Direction::Minimize => value <= reference,
        }
    }

    /// `reference` improved by `delta` in this direction.
    pub fn improved(self, reference: f64, delta: f64) -> f64 {
        match self {
            Direction::Maximize => reference + delta,
            Direction::Minimize => reference - delta,
        }
    }

    fn reach(self) -> &'static str {
        match self {
            Direction::Maximize => "≥",
            Direction::Minimize => "≤",
        }
    }
}

/// Judges `metrics` against `gates`, comparing `mustBeatBaseline` gates with `baseline`.
/// A gate on a metric without a declared direction or without a reported value fails, as
/// does a baseline gate whose baseline did not report the metric.
pub fn judge(
    gates: &[Gate],
    declared: &[MetricSpec],
    metrics: &BTreeMap<String, f64>,
    baseline: Option<&Baseline>,
) -> Vec<GateVerdict> {
    gates
        .iter()
        .map(|g| judge_one(g, declared, metrics, baseline))
        .collect()
}

fn judge_one(
    g: &Gate,
    declared: &[MetricSpec],
    metrics: &BTreeMap<String, f64>,
    baseline: Option<&Baseline>,
) -> GateVerdict {
    let finite = |m: &BTreeMap<String, f64>| m.get(&g.metric).copied().filter(|v| v.is_finite());
    let value = finite(metrics);
    let verdict = |threshold, baseline_version, passed, message: String| GateVerdict {
        metric: g.metric.clone(),
        threshold,
        baseline_version,
        value,
        passed,
        message,
    };
    let Some(direction) = declared
        .iter()
        .find(|m| m.name == g.metric)
        .map(|m| m.direction)
    else {
        return verdict(
            g.threshold,
            None,
            false,
            format!("{} has no direction in spec.metrics", g.metric),
        );
    };
    let (threshold, baseline_version, against) = if g.must_beat_baseline {
        let Some(b) = baseline else {
            return verdict(
                None,
                None,
                true,
                "no blessed earlier version to beat".into(),
            );
        };
        let Some(reference) = finite(&b.metrics) else {
            return verdict(
                None,
                Some(b.version),
                false,
                format!("baseline version {} did not report {}", b.version, g.metric),
            );
        };
        let delta = g.min_delta.unwrap_or(0.0);
        let against = format!("version {} ({reference}) by {delta}", b.version);
        (
            direction.improved(reference, delta),
            Some(b.version),
            against,
        )
    } else {
        let Some(t) = g.threshold else {
            return verdict(
                None,
                None,
                false,
                "the gate has neither threshold nor mustBeatBaseline".into(),
            );
        };
        (t, None, t.to_string())
    };
    let Some(v) = value else {
        return verdict(
            Some(threshold),
            baseline_version,
            false,
            format!("{} was not reported", g.metric),
        );
    };
    let passed = direction.at_least_as_good(v, threshold);
    let message = match (passed, g.must_beat_baseline) {
        (true, true) => format!("{} = {v} beats {against}", g.metric),
        (false, true) => format!("{} = {v} does not beat {against}", g.metric),
        (true, false) => format!("{} = {v} {} {threshold}", g.metric, direction.reach()),
        (false, false) => format!("{} = {v} does not reach {threshold}", g.metric),
    };
    verdict(Some(threshold), baseline_version, passed, message)
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

    fn fixed(metric: &str, threshold: f64) -> Gate {
        Gate {
            metric: metric.into(),
            threshold: Some(threshold),
            must_beat_baseline: false,
            min_delta: None,
        }
    }

    fn beat(metric: &str, min_delta: f64) -> Gate {
        Gate {
            metric: metric.into(),
            threshold: None,
            must_beat_baseline: true,
            min_delta: Some(min_delta),
        }
    }

    #[test]
    fn gates_respect_each_metrics_direction() {
        let gates = [fixed("accuracy", 0.9), fixed("loss", 0.3)];
        let good = BTreeMap::from([("accuracy".into(), 0.93), ("loss".into(), 0.2)]);
        assert!(
            judge(&gates, &declared(), &good, None)
                .iter()
                .all(|v| v.passed)
        );
        let bad = BTreeMap::from([("accuracy".into(), 0.93), ("loss".into(), 0.4)]);
        let verdicts = judge(&gates, &declared(), &bad, None);
        assert!(verdicts[0].passed && !verdicts[1].passed);
    }

    #[test]
    fn a_missing_or_non_finite_metric_fails_its_gate() {
        let gates = [fixed("accuracy", 0.5)];
        assert!(!judge(&gates, &declared(), &BTreeMap::new(), None)[0].passed);
        let nan = BTreeMap::from([("accuracy".into(), f64::NAN)]);
        assert!(!judge(&gates, &declared(), &nan, None)[0].passed);
    }

    #[test]
    fn a_gate_on_an_undeclared_metric_fails() {
        let gates = [fixed("f1", 0.5)];
        let metrics = BTreeMap::from([("f1".into(), 0.9)]);
        assert!(!judge(&gates, &declared(), &metrics, None)[0].passed);
    }

    #[test]
    fn a_baseline_gate_needs_the_min_delta_in_the_metrics_direction() {
        let gates = [beat("accuracy", 0.01), beat("loss", 0.05)];
        let baseline = Baseline {
            version: 3,
            metrics: BTreeMap::from([("accuracy".into(), 0.90), ("loss".into(), 0.30)]),
        };
        let better = BTreeMap::from([("accuracy".into(), 0.92), ("loss".into(), 0.20)]);
        let v = judge(&gates, &declared(), &better, Some(&baseline));
        assert!(v.iter().all(|v| v.passed), "{v:?}");
        assert_eq!(v[0].baseline_version, Some(3));
        assert!(
            (v[1].threshold.unwrap() - 0.25).abs() < 1e-12,
            "loss must drop by 0.05"
        );
        assert_eq!(
            v[0].message,
            "accuracy = 0.92 beats version 3 (0.9) by 0.01"
        );
        // Better, but by less than the delta: not enough.
        let barely = BTreeMap::from([("accuracy".into(), 0.905), ("loss".into(), 0.28)]);
        let v = judge(&gates, &declared(), &barely, Some(&baseline));
        assert!(v.iter().all(|v| !v.passed), "{v:?}");
        assert_eq!(
            v[1].message,
            "loss = 0.28 does not beat version 3 (0.3) by 0.05"
        );
    }

    #[test]
    fn a_baseline_gate_passes_without_a_baseline_and_fails_when_the_baseline_lacks_the_metric() {
        let gates = [beat("accuracy", 0.0)];
        let first = BTreeMap::from([("accuracy".into(), 0.5)]);
        let v = judge(&gates, &declared(), &first, None);
        assert!(v[0].passed && v[0].threshold.is_none(), "{v:?}");
        let silent = Baseline {
            version: 1,
            metrics: BTreeMap::new(),
        };
        assert!(!judge(&gates, &declared(), &first, Some(&silent))[0].passed);
        // An equal value beats the baseline when the delta is 0.
        let same = Baseline {
            version: 1,
            metrics: first.clone(),
        };
        assert!(judge(&gates, &declared(), &first, Some(&same))[0].passed);
    }
}

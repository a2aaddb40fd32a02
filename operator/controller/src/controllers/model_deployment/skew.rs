//! Skew: how far the serving version's inputs are from the data it was trained on, measured
//! from its pods' own counts. Each pod of the built-in server, given the training data's
//! profile, counts every value of an input into that column's bins and shows the training
//! data's share per bin ([`read`]); the counts of all pods add up. The controller keeps the
//! sums at the start of a window in the status (so a restarted operator goes on with the same
//! window), and once the window has lasted `spec.skew.window` and holds `minSamples` values
//! of each feature, measures each feature's distance from the training shares ([`step`]).
//!
//! Skewed is set when a feature is over `maxDistance`, and cleared only when every feature is
//! under `recoverBelow`: a skew that hovers at the limit is reported once. With
//! `onSkew: Retrain`, a skewed window asks for a new check of the Datasets made of this
//! deployment's capture, at most once per cooldown. A counter that went down (a pod
//! restarted or was replaced) or another serving version starts the window again.

use super::rollout::duration;
use ciclo_api::conditions::Set;
use ciclo_api::model_deployment::{FeatureSkew, OnSkew, Skew, SkewStatus};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::time::Duration;

pub const SKEWED: &str = "Skewed";
const COUNTS: &str = "ciclo_serve_input_baseline_bin_values_total";
const SHARES: &str = "ciclo_serve_input_baseline_share";

/// One feature's bins, summed over the pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bins {
    /// The training data's share per bin.
    pub shares: Vec<f64>,
    /// Values counted per bin.
    pub counts: Vec<i64>,
}

/// Every feature's bins, by feature.
pub type Counts = BTreeMap<String, Bins>;

/// The bins in one pod's `/metrics` text.
pub fn parse(text: &str) -> Counts {
    let mut counts = Counts::new();
    for (name, labels, value) in text.lines().filter_map(super::traffic::sample_line) {
        let is_count = name == COUNTS;
        if !is_count && name != SHARES {
            continue;
        }
        let (Some(input), Some(bin)) = (
            labels.get("input"),
            labels.get("bin").and_then(|b| b.parse::<usize>().ok()),
        ) else {
            continue;
        };
        // Bins are few (a histogram's); a larger index is not a bin ciclo serve shows.
        if bin >= 1024 {
            continue;
        }
        let bins = counts.entry(input.clone()).or_default();
        let (shares, counted) = (&mut bins.shares, &mut bins.counts);
        if is_count {
            if counted.len() <= bin {
                counted.resize(bin + 1, 0);
            }
            counted[bin] = value as i64;
        } else {
            if shares.len() <= bin {
                shares.resize(bin + 1, 0.0);
            }
            shares[bin] = value;
        }
    }
    for bins in counts.values_mut() {
        let n = bins.shares.len();
        bins.counts.resize(n, 0);
    }
    counts.retain(|_, b| !b.shares.is_empty());
    counts
}

/// Adds one pod's counts to the sum (pods of one version share the training shares).
pub fn add(total: &mut Counts, one: Counts) {
    for (feature, bins) in one {
        match total.get_mut(&feature) {
            Some(sum) if sum.shares.len() == bins.shares.len() => {
                for (s, c) in sum.counts.iter_mut().zip(&bins.counts) {
                    *s += c;
                }
            }
            Some(_) => {}
            None => {
                total.insert(feature, bins);
            }
        }
    }
}

/// The summed counts of `pods`, read over HTTP at each pod's address.
pub async fn read(pods: &[Pod], port: i32) -> Result<Counts, String> {
    let mut total = Counts::new();
    for text in super::traffic::scrape(pods, port, "/metrics").await? {
        add(&mut total, parse(&text));
    }
    Ok(total)
}

/// What a look at the counts leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub status: SkewStatus,
    /// An Event when the skew starts or ends: (warning, reason, message).
    pub event: Option<(bool, &'static str, String)>,
    /// Ask the capture's Datasets for a new check.
    pub retrain: bool,
}

/// The next status of the skew of serving `version`, whose pods' counts are `counts` now.
pub fn step(
    spec: &Skew,
    previous: Option<&SkewStatus>,
    version: i64,
    counts: &Counts,
    now: Timestamp,
) -> Step {
    let start_counts = || -> BTreeMap<String, Vec<i64>> {
        counts
            .iter()
            .map(|(f, b)| (f.clone(), b.counts.clone()))
            .collect()
    };
    let restart = |previous: Option<&SkewStatus>| {
        let same = previous.filter(|p| p.version == version);
        Step {
            status: SkewStatus {
                version,
                window_started: now,
                window_start: start_counts(),
                measured: same.and_then(|p| p.measured),
                features: same.map(|p| p.features.clone()).unwrap_or_default(),
                skewed: same.is_some_and(|p| p.skewed),
                retrain_requested: previous.and_then(|p| p.retrain_requested),
            },
            event: None,
            retrain: false,
        }
    };
    let Some(previous) = previous.filter(|p| p.version == version) else {
        return restart(previous);
    };
    // The window's values per feature measured; a counter that went down starts it again.
    let mut window: Vec<(&String, &Bins, Vec<i64>)> = Vec::new();
    for (feature, bins) in counts {
        if !spec.features.is_empty() && !spec.features.contains(feature) {
            continue;
        }
        let Some(start) = previous.window_start.get(feature) else {
            return restart(Some(previous));
        };
        if start.len() != bins.counts.len() || start.iter().zip(&bins.counts).any(|(s, c)| c < s) {
            return restart(Some(previous));
        }
        let delta = bins.counts.iter().zip(start).map(|(c, s)| c - s).collect();
        window.push((feature, bins, delta));
    }
    let unchanged = Step {
        status: previous.clone(),
        event: None,
        retrain: false,
    };
    let lasted = since(previous.window_started, now);
    let enough = |delta: &Vec<i64>| delta.iter().sum::<i64>() >= spec.min_samples;
    if window.is_empty()
        || lasted < duration(&spec.window)
        || !window.iter().all(|(_, _, d)| enough(d))
    {
        return unchanged;
    }

    let mut features: Vec<FeatureSkew> = window
        .iter()
        .map(|(feature, bins, delta)| {
            let counts: Vec<u64> = delta.iter().map(|&c| c.max(0) as u64).collect();
            FeatureSkew {
                feature: (*feature).clone(),
                distance: ciclo_core::distance::distance(
                    spec.measure,
                    &bins.shares,
                    &ciclo_core::distance::shares(&counts),
                ),
                samples: delta.iter().sum(),
            }
        })
        .collect();
    features.sort_by(|a, b| b.distance.total_cmp(&a.distance));
    // Hysteresis: over maxDistance to become skewed, under recoverBelow to stop being so.
    let skewed = if previous.skewed {
        features.iter().any(|f| f.distance >= spec.recover_below())
    } else {
        features.iter().any(|f| f.distance > spec.max_distance)
    };
    let cooled = previous
        .retrain_requested
        .is_none_or(|at| since(at, now) >= duration(&spec.cooldown));
    let retrain = skewed && spec.on_skew == OnSkew::Retrain && cooled;
    let event = match (previous.skewed, skewed) {
        (false, true) => Some((
            true,
            "Skewed",
            format!(
                "the inputs of version {version} are far from its training data over the last {}: {}",
                spec.window,
                over(&features, spec.max_distance, spec)
            ),
        )),
        (true, false) => Some((
            false,
            "SkewRecovered",
            format!(
                "the inputs of version {version} are back within {:?} {} of its training data",
                spec.measure,
                spec.recover_below()
            ),
        )),
        _ => None,
    };
    Step {
        status: SkewStatus {
            version,
            window_started: now,
            window_start: start_counts(),
            measured: Some(now),
            features,
            skewed,
            retrain_requested: if retrain {
                Some(now)
            } else {
                previous.retrain_requested
            },
        },
        event,
        retrain,
    }
}

/// "x1 PSI 1.234 (over 0.2), x2 …": the features at or over `bound`.
fn over(features: &[FeatureSkew], bound: f64, spec: &Skew) -> String {
    features
        .iter()
        .filter(|f| f.distance >= bound)
        .map(|f| {
            format!(
                "{} {:?} {:.3} (limit {}, {} values)",
                f.feature, spec.measure, f.distance, spec.max_distance, f.samples
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `Skewed` condition the status says.
pub fn condition(spec: &Skew, status: Option<&SkewStatus>) -> Set {
    match status {
        Some(s) if s.skewed => Set::new(
            SKEWED,
            true,
            "Skewed",
            format!(
                "the inputs of version {} are far from its training data: {}",
                s.version,
                over(&s.features, spec.recover_below(), spec)
            ),
        ),
        Some(s) if s.measured.is_some() => Set::new(
            SKEWED,
            false,
            "WithinLimits",
            match s.features.first() {
                Some(f) => format!(
                    "the farthest feature of version {}, {}, is at {:?} {:.3} (limit {})",
                    s.version, f.feature, spec.measure, f.distance, spec.max_distance
                ),
                None => format!("version {} was measured", s.version),
            },
        ),
        Some(s) if s.window_start.is_empty() => Set::new(
            SKEWED,
            false,
            "NoBaseline",
            format!(
                "the serving pods of version {} count no input into its training data's bins: no input is named like a numeric column of the dataset version it was trained on, or its profile is not readable (see the pods' log)",
                s.version
            ),
        ),
        Some(s) => Set::new(
            SKEWED,
            false,
            "Measuring",
            format!(
                "the first window of version {} (from {}) needs {} and {} values per feature",
                s.version, s.window_started, spec.window, spec.min_samples
            ),
        ),
        None => Set::new(
            SKEWED,
            false,
            "Measuring",
            "not measured yet: no serving pod has been read".to_string(),
        ),
    }
}

/// How often to look at the counts: often enough to end a window on time.
pub fn poll(spec: &Skew) -> Duration {
    (duration(&spec.window) / 10).clamp(Duration::from_secs(2), Duration::from_secs(60))
}

/// The time from `then` to `now` (none when the clock went back).
fn since(then: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(then)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Skew {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    /// Feature x over two equal bins of the training data, with these counts.
    fn counts(a: i64, b: i64) -> Counts {
        Counts::from([(
            "x".to_string(),
            Bins {
                shares: vec![0.5, 0.5],
                counts: vec![a, b],
            },
        )])
    }

    const RETRAIN: &str =
        "{maxDistance: 0.2, window: 1m, minSamples: 100, onSkew: Retrain, cooldown: 10m}";

    #[test]
    fn a_window_is_measured_once_it_lasted_and_holds_enough_values() {
        let spec = spec(RETRAIN);
        let first = step(&spec, None, 3, &counts(10, 10), t(0));
        assert_eq!(first.status.window_start["x"], [10, 10]);
        assert_eq!(
            (first.status.measured, first.event, first.retrain),
            (None, None, false)
        );
        // Too early, then too few values: the window goes on.
        let early = step(&spec, Some(&first.status), 3, &counts(500, 10), t(30));
        assert_eq!(early.status, first.status);
        let few = step(&spec, Some(&first.status), 3, &counts(60, 30), t(90));
        assert_eq!(few.status, first.status);
        // Long enough, enough values, all in one bin: skewed, retrain asked for.
        let skewed = step(&spec, Some(&first.status), 3, &counts(210, 10), t(120));
        assert!(skewed.status.skewed);
        assert_eq!(skewed.status.measured, Some(t(120)));
        assert_eq!(
            skewed.status.window_start["x"],
            [210, 10],
            "the next window starts"
        );
        assert_eq!(skewed.status.features[0].samples, 200);
        assert!(skewed.status.features[0].distance > 0.2);
        let (warning, reason, message) = skewed.event.clone().unwrap();
        assert!(
            warning && reason == "Skewed" && message.contains("x Psi"),
            "{message}"
        );
        assert!(skewed.retrain);
        assert_eq!(skewed.status.retrain_requested, Some(t(120)));
        let c = condition(&spec, Some(&skewed.status));
        assert!(c.status && c.message.contains("version 3"), "{c:?}");
    }

    #[test]
    fn hysteresis_and_cooldown_keep_it_from_flapping() {
        let spec = spec(RETRAIN);
        let start = step(&spec, None, 1, &counts(0, 0), t(0)).status;
        let skewed = step(&spec, Some(&start), 1, &counts(200, 0), t(60)).status;
        assert!(skewed.skewed);
        // Still skewed a window later, within the cooldown: no event, no new request.
        let still = step(&spec, Some(&skewed), 1, &counts(400, 0), t(120));
        assert!(still.status.skewed && still.event.is_none() && !still.retrain);
        assert_eq!(still.status.retrain_requested, Some(t(60)));
        // Between recoverBelow (0.1) and maxDistance (0.2): still skewed. 70/30 is PSI ~0.17.
        let between = step(&spec, Some(&still.status), 1, &counts(470, 30), t(180));
        let d = between.status.features[0].distance;
        assert!(d > 0.1 && d < 0.2, "{d}");
        assert!(between.status.skewed && between.event.is_none());
        // After the cooldown, skewed again: asked again.
        let later = step(&spec, Some(&between.status), 1, &counts(670, 30), t(700));
        assert!(later.retrain);
        // Back to even: recovered, once.
        let even = step(&spec, Some(&later.status), 1, &counts(770, 130), t(760));
        assert!(!even.status.skewed);
        let (warning, reason, note) = even.event.clone().unwrap();
        assert!(
            !warning && reason == "SkewRecovered" && note.contains("back within"),
            "{note}"
        );
        assert!(!condition(&spec, Some(&even.status)).status);
        // From unskewed, the same in-between distance does not set it.
        let calm = step(&spec, Some(&even.status), 1, &counts(840, 160), t(820));
        assert!(!calm.status.skewed && calm.event.is_none());
    }

    #[test]
    fn a_restarted_pod_or_another_version_starts_the_window_again() {
        let spec = spec(RETRAIN);
        let start = step(&spec, None, 1, &counts(0, 0), t(0)).status;
        let skewed = step(&spec, Some(&start), 1, &counts(200, 0), t(60)).status;
        // A counter went down: a new window from here, the verdict kept.
        let reset = step(&spec, Some(&skewed), 1, &counts(5, 0), t(90)).status;
        assert_eq!((reset.window_started, reset.skewed), (t(90), true));
        assert_eq!(reset.window_start["x"], [5, 0]);
        // Another version serves: its own window and verdict; the cooldown stays.
        let other = step(&spec, Some(&skewed), 2, &counts(7, 7), t(100)).status;
        assert_eq!(
            (other.version, other.skewed, other.measured),
            (2, false, None)
        );
        assert_eq!(other.retrain_requested, Some(t(60)));
    }

    #[test]
    fn alert_only_never_asks_for_training_and_unlisted_features_are_left_out() {
        let spec = spec("{maxDistance: 0.2, window: 1m, minSamples: 10, features: [y]}");
        let start = step(&spec, None, 1, &counts(0, 0), t(0)).status;
        // Only x has bins and x is not listed: nothing to measure.
        let next = step(&spec, Some(&start), 1, &counts(100, 0), t(60));
        assert_eq!(next.status, start);
        let spec = self::spec("{maxDistance: 0.2, window: 1m, minSamples: 10}");
        let skewed = step(&spec, Some(&start), 1, &counts(100, 0), t(60));
        assert!(skewed.status.skewed && !skewed.retrain);
    }

    #[test]
    fn the_pods_counts_are_read_from_their_metrics_and_summed() {
        let pod = |x0: i64| {
            format!(
                "# TYPE ciclo_serve_input_baseline_bin_values counter
ciclo_serve_input_baseline_bin_values_total{{input=\"x\",bin=\"0\"}} {x0}
ciclo_serve_input_baseline_bin_values_total{{input=\"x\",bin=\"1\"}} 3
ciclo_serve_input_value_count{{input=\"x\"}} 99
# TYPE ciclo_serve_input_baseline_share gauge
ciclo_serve_input_baseline_share{{input=\"x\",bin=\"0\"}} 0.25
ciclo_serve_input_baseline_share{{input=\"x\",bin=\"1\"}} 0.75
"
            )
        };
        let mut total = parse(&pod(1));
        add(&mut total, parse(&pod(4)));
        assert_eq!(
            total,
            Counts::from([(
                "x".to_string(),
                Bins {
                    shares: vec![0.25, 0.75],
                    counts: vec![5, 6],
                }
            )])
        );
        assert!(parse("ciclo_serve_requests_total 3\n").is_empty());
    }
}

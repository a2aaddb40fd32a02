//! Running statistics of every input the model has (count, sum, min, max and a histogram),
//! so what is served can be compared with what the model was trained on.
//!
//! A request's values of all inputs are added under one lock, each value's bucket found
//! through a table ([`Buckets`]): a built-in model of 30 features would otherwise take 60
//! locks per request (prometheus-client's histogram takes a write lock and scans its buckets
//! for every value), a tenth of the time a request takes. The statistics are encoded at
//! scrape time as prometheus-client encodes its own histograms and gauges, labelled only with
//! the loaded model's input names: a request never creates a label.
//!
//! With the profile of the data the model was trained on ([`InputStats::set_baselines`]),
//! each value of an input named like one of its numeric columns is also counted into that
//! column's bins ([`ciclo_profile::Baseline`]): `input_baseline_bin_values` beside the
//! baseline's own `input_baseline_share` per bin. The counts of all serving pods add up, and
//! their shares against the baseline's are the skew, measured as Dataset drift is.

use ciclo_profile::Baseline;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InputLabel {
    input: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BinLabel {
    input: String,
    bin: u32,
}

/// The statistics of each input, by the input's position in the model. Made empty with the
/// metrics; the model's inputs are named once it is loaded.
#[derive(Debug)]
pub(crate) struct InputStats {
    buckets: Buckets,
    /// The inputs' names, once the model is loaded.
    names: OnceLock<Vec<InputLabel>>,
    stats: Mutex<Vec<Stat>>,
}

#[derive(Debug, Clone)]
struct Stat {
    sum: f64,
    count: u64,
    /// Per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<u64>,
    /// The least and greatest value so far (`+∞`, `-∞` until one is seen: an unseen input
    /// shows no made-up 0).
    least: f64,
    greatest: f64,
    /// The training data's bins of this input, and the values counted in each.
    skew: Option<Skew>,
}

#[derive(Debug, Clone)]
struct Skew {
    baseline: Arc<Baseline>,
    counts: Vec<u64>,
}

/// A histogram's buckets, and a fast way to the bucket of a value. A binary search over the
/// 39 bounds was most of the time the statistics took (a chain of six dependent compares per
/// value, for every feature of every row); here the value's sign and binary exponent (the
/// top 12 bits of an order-preserving image of it) index a table of where to start, and as
/// many compares as a key has bounds at most (one, for the 1-2-5 grid) finish, without a
/// branch: a loop that stopped at the first bound over the value was mispredicted for a
/// good part of the values.
#[derive(Debug)]
struct Buckets {
    /// Upper bounds, ascending (the `+Inf` bucket is implied).
    bounds: Vec<f64>,
    /// `bounds`, then `width` times `+∞`: what the compares read.
    padded: Vec<f64>,
    /// The most bounds one key has.
    width: usize,
    /// For each 12-bit key, how many bounds are below every value of that key.
    start: Vec<u16>,
}

impl Buckets {
    fn new(mut bounds: Vec<f64>) -> Self {
        // -0.0 and 0.0 are one value to a compare, but not to `key`.
        bounds
            .iter_mut()
            .filter(|b| **b == 0.0)
            .for_each(|b| *b = 0.0);
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]) && bounds.len() < usize::from(u16::MAX),
            "histogram bounds ascend"
        );
        let start: Vec<u16> = (0..1u64 << 12)
            .map(|k| bounds.partition_point(|b| key(*b) < k) as u16)
            .collect();
        let width = start
            .iter()
            .zip(start.iter().skip(1).chain([&(bounds.len() as u16)]))
            .map(|(from, to)| usize::from(to - from))
            .max()
            .unwrap_or(0);
        let padded = bounds
            .iter()
            .copied()
            .chain(std::iter::repeat_n(f64::INFINITY, width))
            .collect();
        Self {
            bounds,
            padded,
            width,
            start,
        }
    }

    /// The index of the bucket of finite `v`: the first bound at or over it (Prometheus
    /// buckets count values at or under their bound), or the `+Inf` bucket.
    fn of(&self, v: f64) -> usize {
        // Bounds of a lower key are below `v`, of a higher key (or the padding) over it: of
        // the `width` bounds from `start`, those below `v` are the ones of its own key.
        let start = usize::from(self.start[key(v) as usize]);
        self.padded[start..start + self.width]
            .iter()
            .map(|b| usize::from(*b < v))
            .sum::<usize>()
            + start
    }
}

/// The top 12 bits (sign and exponent) of the image of `v` in `u64` that keeps the order of
/// floats: non-negative floats with the sign bit set, negative ones with every bit flipped.
fn key(v: f64) -> u64 {
    let bits = v.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    ordered >> 52
}

/// Adds one request's values, under the lock [`InputStats::record`] holds.
pub(crate) struct Recorder<'a> {
    buckets: &'a Buckets,
    stats: &'a mut [Stat],
}

impl Recorder<'_> {
    /// Adds the finite `values` of input `index` (NaN and infinities would poison the sum).
    pub fn add(&mut self, index: usize, values: impl IntoIterator<Item = f64>) {
        let Some(stat) = self.stats.get_mut(index) else {
            return;
        };
        let (mut least, mut greatest, mut sum, mut count) = (stat.least, stat.greatest, 0.0, 0u64);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            // Prometheus buckets count values at or under their bound.
            stat.counts[self.buckets.of(v)] += 1;
            if let Some(skew) = &mut stat.skew {
                skew.counts[skew.baseline.bin(v)] += 1;
            }
            sum += v;
            count += 1;
            least = least.min(v);
            greatest = greatest.max(v);
        }
        stat.sum += sum;
        stat.count += count;
        (stat.least, stat.greatest) = (least, greatest);
    }
}

impl InputStats {
    /// Statistics with histogram buckets at `bounds` (ascending).
    pub fn new(bounds: Vec<f64>) -> Self {
        Self {
            buckets: Buckets::new(bounds),
            names: OnceLock::new(),
            stats: Mutex::new(Vec::new()),
        }
    }

    /// Names the model's inputs: from now on each is shown, with a zero count until values
    /// arrive. Only the first call counts (a server loads one model).
    pub fn name_inputs(&self, names: &[String]) {
        let labels = names
            .iter()
            .map(|n| InputLabel { input: n.clone() })
            .collect();
        if self.names.set(labels).is_ok() {
            let empty = Stat {
                sum: 0.0,
                count: 0,
                counts: vec![0; self.buckets.bounds.len() + 1],
                least: f64::INFINITY,
                greatest: f64::NEG_INFINITY,
                skew: None,
            };
            *self.lock() = vec![empty; names.len()];
        }
    }

    /// Counts each named input's values into the bins of the profile's column of its name
    /// too, from now on; returns the inputs that have one. Only numeric columns with values
    /// have bins.
    pub fn set_baselines(&self, profile: &ciclo_profile::Profile) -> Vec<String> {
        let Some(names) = self.names.get() else {
            return Vec::new();
        };
        let mut stats = self.lock();
        let mut matched = Vec::new();
        for (label, stat) in names.iter().zip(stats.iter_mut()) {
            let baseline = profile.column(&label.input).and_then(Baseline::of);
            stat.skew = baseline.map(|b| Skew {
                counts: vec![0; b.len()],
                baseline: Arc::new(b),
            });
            if stat.skew.is_some() {
                matched.push(label.input.clone());
            }
        }
        matched
    }

    /// Adds one request's values of any inputs, all under one lock.
    pub fn record(&self, add: impl FnOnce(&mut Recorder<'_>)) {
        let mut stats = self.lock();
        add(&mut Recorder {
            buckets: &self.buckets,
            stats: &mut stats,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Stat>> {
        // The statistics stay consistent value by value: a panic elsewhere leaves them usable.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Collector for InputStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(names) = self.names.get() else {
            return Ok(());
        };
        let stats = self.lock().clone();
        let labelled = || names.iter().zip(&stats);
        let mut family = encoder.encode_descriptor(
            "input_value",
            "Values received per model input (sum / count is the mean).",
            None,
            MetricType::Histogram,
        )?;
        for (label, stat) in labelled() {
            let buckets: Vec<(f64, u64)> = self
                .buckets
                .bounds
                .iter()
                .copied()
                .chain([f64::MAX])
                .zip(stat.counts.iter().copied())
                .collect();
            family
                .encode_family(label)?
                .encode_histogram::<NoLabelSet>(stat.sum, stat.count, &buckets, None)?;
        }
        // The bounds only of inputs that have had a value; no family when none has.
        let bounds = [
            (
                "input_min",
                "The least value received per model input.",
                true,
            ),
            (
                "input_max",
                "The greatest value received per model input.",
                false,
            ),
        ];
        if stats.iter().any(|s| s.count > 0) {
            for (name, help, least) in bounds {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for (label, stat) in labelled().filter(|(_, s)| s.count > 0) {
                    let value = if least { stat.least } else { stat.greatest };
                    family.encode_family(label)?.encode_gauge(&value)?;
                }
            }
        }
        // Skew: the served values per bin of the training data, and the training data's own
        // share per bin, for the inputs that have them.
        if stats.iter().any(|s| s.skew.is_some()) {
            let with_bins =
                || labelled().filter_map(|(label, stat)| stat.skew.as_ref().map(|s| (label, s)));
            let mut family = encoder.encode_descriptor(
                "input_baseline_bin_values",
                "Values received per model input, per bin of the data the model was trained on.",
                None,
                MetricType::Counter,
            )?;
            for (label, skew) in with_bins() {
                for (bin, count) in skew.counts.iter().enumerate() {
                    let labels = BinLabel {
                        input: label.input.clone(),
                        bin: bin as u32,
                    };
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, f64>(count, None)?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "input_baseline_share",
                "The share of values per bin of the data the model was trained on, per model input.",
                None,
                MetricType::Gauge,
            )?;
            for (label, skew) in with_bins() {
                for (bin, share) in skew.baseline.shares.iter().enumerate() {
                    let labels = BinLabel {
                        input: label.input.clone(),
                        bin: bin as u32,
                    };
                    family.encode_family(&labels)?.encode_gauge(share)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn it_encodes_what_prometheus_clients_histogram_and_gauges_do_for_the_same_values() {
        const BOUNDS: [f64; 4] = [-1.0, 0.0, 0.5, 2.0];
        let a = [-3.0, -1.0, 0.0, 0.25, 0.5, f64::NAN];
        let b = [0.7, 2.0, 9.0, f64::INFINITY];
        let label = |n: &str| InputLabel { input: n.into() };

        let mut theirs = Registry::default();
        let values =
            Family::<InputLabel, Histogram>::new_with_constructor(|| Histogram::new(BOUNDS));
        let min = Family::<InputLabel, Gauge<f64, AtomicU64>>::default();
        let max = Family::<InputLabel, Gauge<f64, AtomicU64>>::default();
        theirs.register(
            "input_value",
            "Values received per model input (sum / count is the mean)",
            values.clone(),
        );
        theirs.register(
            "input_min",
            "The least value received per model input",
            min.clone(),
        );
        theirs.register(
            "input_max",
            "The greatest value received per model input",
            max.clone(),
        );
        for (name, vs) in [("a", &a[..]), ("b", &b[..])] {
            let finite: Vec<f64> = vs.iter().copied().filter(|v| v.is_finite()).collect();
            finite
                .iter()
                .for_each(|v| values.get_or_create(&label(name)).observe(*v));
            min.get_or_create(&label(name))
                .set(finite.iter().copied().fold(f64::INFINITY, f64::min));
            max.get_or_create(&label(name))
                .set(finite.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }

        let ours = Arc::new(InputStats::new(BOUNDS.to_vec()));
        ours.name_inputs(&["a".into(), "b".into()]);
        ours.record(|r| {
            r.add(0, a[..3].iter().copied());
            r.add(1, b);
            r.add(7, [1.0]);
        });
        ours.record(|r| r.add(0, a[3..].iter().copied()));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ours));
        // The same lines; a Family's order of labels is its hash map's.
        let lines = |t: String| {
            let mut l: Vec<String> = t.lines().map(str::to_string).collect();
            l.sort();
            l
        };
        assert_eq!(lines(text(&registry)), lines(text(&theirs)));
    }

    #[test]
    fn every_value_falls_in_the_bucket_a_search_of_the_bounds_finds() {
        let grid = crate::metrics::input_buckets();
        let mut probes: Vec<f64> = grid
            .iter()
            .flat_map(|b| {
                [
                    *b,
                    b.next_down(),
                    b.next_up(),
                    b * 0.999,
                    b * 1.001,
                    b / 2.0,
                ]
            })
            .chain([
                0.0,
                -0.0,
                f64::MIN_POSITIVE,
                -f64::MIN_POSITIVE,
                5e-324,
                -5e-324,
            ])
            .chain([f64::MAX, f64::MIN, 1e300, -1e300, 1e-300, 3.7, -123.4])
            .collect();
        probes.extend((0..2000).map(|i| ((i as f64) * 0.37).sin() * 10f64.powi(i % 13 - 5)));
        for bounds in [
            grid,
            vec![-0.0, 1.0],
            vec![-1e-310, 1e-310],
            vec![1.0, 1.5, 1.75],
            vec![1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 1e9],
            vec![],
        ] {
            let buckets = Buckets::new(bounds.clone());
            for v in &probes {
                assert_eq!(
                    buckets.of(*v),
                    bounds.partition_point(|b| b < v),
                    "{v} in {bounds:?}"
                );
            }
        }
    }

    #[test]
    fn inputs_show_from_the_start_and_bounds_only_once_seen() {
        let stats = Arc::new(InputStats::new(vec![0.0]));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(stats.clone()));
        assert_eq!(text(&registry), "# EOF\n", "nothing before the model loads");
        stats.name_inputs(&["a".into(), "b".into()]);
        let shown = text(&registry);
        assert!(
            shown.contains("input_value_count{input=\"a\"} 0"),
            "{shown}"
        );
        assert!(!shown.contains("input_min"), "{shown}");
        stats.record(|r| r.add(1, [f64::NAN, 4.0]));
        let shown = text(&registry);
        assert!(shown.contains("input_min{input=\"b\"} 4.0"), "{shown}");
        assert!(shown.contains("input_max{input=\"b\"} 4.0"), "{shown}");
        assert!(!shown.contains("input_min{input=\"a\"}"), "{shown}");
    }
}

//! Judging a canary step from the canary pods' own request counters: the error ratio and the
//! 99th-percentile latency over the step (the counters at its end minus those at its start),
//! against `spec.analysis`.

use ciclo_api::model_deployment::{Analysis, TrafficSample};

/// The outcome of a step's analysis.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every threshold holds; the summary says by how much.
    Pass(String),
    /// A threshold is broken: why.
    Fail(String),
    /// Too few requests to judge yet (how many so far).
    Insufficient(f64),
}

/// Judges the traffic between `start` and `end` (cumulative counters of the same pods).
pub fn judge(start: &TrafficSample, end: &TrafficSample, analysis: &Analysis) -> Verdict {
    let requests = end.requests - start.requests;
    let errors = end.errors - start.errors;
    if requests < 0.0 || errors < 0.0 {
        // A counter went back: a canary pod restarted during the step.
        return Verdict::Fail("a canary pod restarted during the step".into());
    }
    if requests < analysis.min_requests as f64 || requests == 0.0 {
        return Verdict::Insufficient(requests);
    }
    let ratio = errors / requests;
    if ratio > analysis.max_error_ratio {
        return Verdict::Fail(format!(
            "error ratio {ratio:.4} ({errors} of {requests} requests) is over {}",
            analysis.max_error_ratio
        ));
    }
    let p99 = quantile_upper_bound(start, end, 0.99);
    if let Some(max_ms) = analysis.max_p99_latency_ms {
        let max = max_ms as f64 / 1000.0;
        match p99 {
            Some(p) if p > max => {
                return Verdict::Fail(format!(
                    "p99 latency up to {} ms is over {max_ms} ms",
                    p * 1000.0
                ));
            }
            None => {
                return Verdict::Fail(format!(
                    "p99 latency is beyond the largest histogram bound, over {max_ms} ms"
                ));
            }
            _ => {}
        }
    }
    Verdict::Pass(format!(
        "{requests} requests, error ratio {ratio:.4}{}",
        p99.map(|p| format!(", p99 ≤ {} ms", p * 1000.0))
            .unwrap_or_default()
    ))
}

/// The upper bound (seconds) of the histogram bucket holding quantile `q` of the requests
/// between the two samples; `None` when it lies in the unbounded (`+Inf`) bucket or there are
/// no buckets.
fn quantile_upper_bound(start: &TrafficSample, end: &TrafficSample, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = end
        .latency_buckets
        .iter()
        .filter_map(|(le, count)| {
            let bound: f64 = le.parse().ok()?;
            let before = start.latency_buckets.get(le).copied().unwrap_or(0.0);
            Some((bound, count - before))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return buckets.first().map(|b| b.0).filter(|b| b.is_finite());
    }
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|(bound, _)| *bound)
        .filter(|b| b.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(requests: f64, errors: f64, buckets: &[(&str, f64)]) -> TrafficSample {
        TrafficSample {
            requests,
            errors,
            latency_buckets: buckets
                .iter()
                .map(|(le, c)| (le.to_string(), *c))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn analysis(max_p99_ms: Option<i64>) -> Analysis {
        Analysis {
            max_error_ratio: 0.01,
            max_p99_latency_ms: max_p99_ms,
            min_requests: 20,
        }
    }

    #[test]
    fn only_the_steps_own_traffic_counts() {
        // 1000 earlier requests with 50 errors; the step itself: 200 requests, 1 error.
        let start = sample(1000.0, 50.0, &[]);
        let end = sample(1200.0, 51.0, &[]);
        assert!(matches!(
            judge(&start, &end, &analysis(None)),
            Verdict::Pass(_)
        ));
        let bad = sample(1200.0, 60.0, &[]);
        let Verdict::Fail(why) = judge(&start, &bad, &analysis(None)) else {
            panic!("10 errors in 200 requests is 5 %");
        };
        assert!(
            why.starts_with("error ratio 0.0500 (10 of 200 requests)"),
            "{why}"
        );
    }

    #[test]
    fn too_little_traffic_is_not_judged_and_a_reset_counter_fails() {
        let start = sample(10.0, 0.0, &[]);
        assert_eq!(
            judge(&start, &sample(15.0, 0.0, &[]), &analysis(None)),
            Verdict::Insufficient(5.0)
        );
        assert!(matches!(
            judge(&start, &sample(3.0, 0.0, &[]), &analysis(None)),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn p99_latency_is_read_from_the_histogram_of_the_step() {
        let start = sample(0.0, 0.0, &[("0.01", 0.0), ("0.1", 0.0), ("+Inf", 0.0)]);
        // 100 requests: 98 under 10 ms, 2 between 10 and 100 ms.
        let end = sample(
            100.0,
            0.0,
            &[("0.01", 98.0), ("0.1", 100.0), ("+Inf", 100.0)],
        );
        assert!(matches!(
            judge(&start, &end, &analysis(Some(100))),
            Verdict::Pass(_)
        ));
        let Verdict::Fail(why) = judge(&start, &end, &analysis(Some(50))) else {
            panic!("the 99th request falls in the 100 ms bucket");
        };
        assert!(why.contains("over 50 ms"), "{why}");
        // Slow requests beyond every bound.
        let slow = sample(100.0, 0.0, &[("0.01", 0.0), ("0.1", 0.0), ("+Inf", 100.0)]);
        assert!(matches!(
            judge(&start, &slow, &analysis(Some(500))),
            Verdict::Fail(_)
        ));
    }
}

//! Judging a canary step from the canary pods' own request counters: the error ratio and the
//! 99th-percentile latency over the step (the counters at its end minus those at its start),
//! against `spec.analysis`. A runtime that reports latency only as a summary (Triton) is judged
//! on the p99 its summary gives at the step's end.
//!
//! `minRequests` is how much traffic a step needs before it can be judged; fewer requests hold
//! the step. With `minRequests: 0` a step that saw no requests has nothing to judge and passes
//! on its pause alone, while any requests it did see are judged against the thresholds as
//! usual: the step is only as lenient as the traffic is absent.

use ciclo_api::model_deployment::{Analysis, TrafficSample};

/// The outcome of a step's analysis.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every threshold holds (or, with `minRequests: 0`, no request came to judge); the
    /// summary says by how much.
    Pass(String),
    /// A threshold is broken: why.
    Fail(String),
    /// Too few requests to judge yet (how many so far).
    Insufficient(f64),
}

/// The step's 99th-percentile latency as the latency histogram tells it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum P99 {
    /// At most this many seconds (the upper bound of the bucket holding it).
    AtMost(f64),
    /// Beyond the largest finite bound, which is given (seconds).
    Beyond(f64),
    /// As the runtime's own summary reports it over its own window (seconds).
    Reported(f64),
    /// Not known: the pods expose no histogram, or it counted none of the step's requests.
    Unknown,
}

/// Judges the traffic between `start` and `end` (cumulative counters of the same pods);
/// `latency` names the latency metric read, if any, for messages.
pub fn judge(
    start: &TrafficSample,
    end: &TrafficSample,
    analysis: &Analysis,
    latency: Option<&str>,
) -> Verdict {
    let requests = end.requests - start.requests;
    let errors = end.errors - start.errors;
    if requests < 0.0 || errors < 0.0 {
        // A counter went back: a canary pod restarted during the step.
        return Verdict::Fail("a canary pod restarted during the step".into());
    }
    if requests == 0.0 && analysis.min_requests == 0 {
        return Verdict::Pass(
            "no requests reached the canary, nothing to judge (analysis.minRequests is 0)".into(),
        );
    }
    if requests == 0.0 || requests < analysis.min_requests as f64 {
        return Verdict::Insufficient(requests);
    }
    let ratio = errors / requests;
    if ratio > analysis.max_error_ratio {
        return Verdict::Fail(format!(
            "error ratio {ratio:.4} ({errors} of {requests} requests) is over {}",
            analysis.max_error_ratio
        ));
    }
    let p99 = p99(start, end);
    if let Some(max_ms) = analysis.max_p99_latency_ms {
        let max = max_ms as f64 / 1000.0;
        match p99 {
            P99::AtMost(p) if p > max => {
                return Verdict::Fail(format!(
                    "p99 latency up to {} ms is over {max_ms} ms",
                    ms(p)
                ));
            }
            P99::Beyond(largest) => {
                return Verdict::Fail(format!(
                    "p99 latency is beyond the largest latency bucket ({} ms), over {max_ms} ms",
                    ms(largest)
                ));
            }
            P99::Reported(p) if p > max => {
                return Verdict::Fail(format!(
                    "p99 latency {} ms (the runtime's own summary) is over {max_ms} ms",
                    ms(p)
                ));
            }
            P99::Unknown => {
                return Verdict::Fail(match latency {
                    Some(name) => format!(
                        "the canary pods' latency metric ({name}) counted none of the step's \
                         {requests} requests, so maxP99LatencyMs {max_ms} cannot be checked"
                    ),
                    None => format!(
                        "spec.runtime.metrics names no latency metric, so maxP99LatencyMs \
                         {max_ms} cannot be checked"
                    ),
                });
            }
            P99::AtMost(_) | P99::Reported(_) => {}
        }
    }
    Verdict::Pass(format!(
        "{requests} requests, error ratio {ratio:.4}{}",
        p99.text().map(|t| format!(", p99 {t}")).unwrap_or_default()
    ))
}

impl P99 {
    /// How it reads for people ("≤ 2.5 ms"), if it is known to a bound.
    fn text(self) -> Option<String> {
        match self {
            P99::AtMost(p) => Some(format!("≤ {} ms", ms(p))),
            P99::Reported(p) => Some(format!("{} ms (runtime's summary)", ms(p))),
            P99::Beyond(largest) => Some(format!("> {} ms", ms(largest))),
            P99::Unknown => None,
        }
    }
}

/// The 99th-percentile latency of the requests between two samples of the same pods, as
/// people read it (`≤ 2.5 ms`, `> 10000 ms`), if the pods' metrics tell it.
pub fn p99_text(start: &TrafficSample, end: &TrafficSample) -> Option<String> {
    p99(start, end).text()
}

/// Seconds as milliseconds for people: bucket bounds such as 0.007 s read 7, not
/// 7.000000000000001.
fn ms(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e3
}

/// Where the 99th percentile of the requests between the two samples lies in the latency
/// histogram.
fn p99(start: &TrafficSample, end: &TrafficSample) -> P99 {
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
    let reported = || match end.summary_p99_seconds {
        Some(p) => P99::Reported(p),
        None => P99::Unknown,
    };
    let Some(&(_, total)) = buckets.last() else {
        return reported();
    };
    if total <= 0.0 {
        return reported();
    }
    let largest = buckets
        .iter()
        .rev()
        .map(|b| b.0)
        .find(|b| b.is_finite())
        .unwrap_or_default();
    match buckets.iter().find(|(_, count)| *count >= 0.99 * total) {
        Some(&(bound, _)) if bound.is_finite() => P99::AtMost(bound),
        _ => P99::Beyond(largest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const CICLO: Option<&str> = Some("ciclo_serve_request_duration_seconds");

    fn sample(requests: f64, errors: f64, buckets: &[(&str, f64)]) -> TrafficSample {
        TrafficSample {
            requests,
            errors,
            latency_buckets: buckets
                .iter()
                .map(|(le, c)| (le.to_string(), *c))
                .collect::<BTreeMap<_, _>>(),
            summary_p99_seconds: None,
        }
    }

    fn analysis(max_p99_ms: Option<i64>) -> Analysis {
        Analysis {
            max_error_ratio: 0.01,
            max_p99_latency_ms: max_p99_ms,
            min_requests: 20,
        }
    }

    fn no_minimum(max_p99_ms: Option<i64>) -> Analysis {
        Analysis {
            min_requests: 0,
            ..analysis(max_p99_ms)
        }
    }

    #[test]
    fn only_the_steps_own_traffic_counts() {
        // 1000 earlier requests with 50 errors; the step itself: 200 requests, 1 error.
        let start = sample(1000.0, 50.0, &[]);
        let end = sample(1200.0, 51.0, &[]);
        assert!(matches!(
            judge(&start, &end, &analysis(None), CICLO),
            Verdict::Pass(_)
        ));
        let bad = sample(1200.0, 60.0, &[]);
        let Verdict::Fail(why) = judge(&start, &bad, &analysis(None), CICLO) else {
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
            judge(&start, &sample(15.0, 0.0, &[]), &analysis(None), CICLO),
            Verdict::Insufficient(5.0)
        );
        assert!(matches!(
            judge(&start, &sample(3.0, 0.0, &[]), &analysis(None), CICLO),
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
            judge(&start, &end, &analysis(Some(100)), CICLO),
            Verdict::Pass(_)
        ));
        let Verdict::Fail(why) = judge(&start, &end, &analysis(Some(50)), CICLO) else {
            panic!("the 99th request falls in the 100 ms bucket");
        };
        assert!(why.contains("over 50 ms"), "{why}");
        // Slow requests beyond every bound.
        let slow = sample(100.0, 0.0, &[("0.01", 0.0), ("0.1", 0.0), ("+Inf", 100.0)]);
        assert!(matches!(
            judge(&start, &slow, &analysis(Some(500)), CICLO),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn a_step_without_requests_passes_only_when_min_requests_is_0() {
        let quiet = sample(500.0, 3.0, &[("0.1", 500.0), ("+Inf", 500.0)]);
        let Verdict::Pass(summary) = judge(&quiet, &quiet, &no_minimum(Some(100)), CICLO) else {
            panic!("nothing to judge, and nothing asked for");
        };
        assert!(
            summary.contains("no requests reached the canary"),
            "{summary}"
        );
        assert_eq!(
            judge(&quiet, &quiet, &analysis(Some(100)), CICLO),
            Verdict::Insufficient(0.0)
        );
    }

    #[test]
    fn with_min_requests_0_the_requests_that_came_are_still_judged() {
        let start = sample(0.0, 0.0, &[("0.01", 0.0), ("0.1", 0.0), ("+Inf", 0.0)]);
        // 3 requests: fewer than the usual 20, but with no minimum they count.
        let healthy = sample(3.0, 0.0, &[("0.01", 3.0), ("0.1", 3.0), ("+Inf", 3.0)]);
        assert!(matches!(
            judge(&start, &healthy, &no_minimum(Some(50)), CICLO),
            Verdict::Pass(_)
        ));
        // 1 error in 3 requests is a third, far over 1 %.
        let failing = sample(3.0, 1.0, &[("0.01", 3.0), ("0.1", 3.0), ("+Inf", 3.0)]);
        let Verdict::Fail(why) = judge(&start, &failing, &no_minimum(None), CICLO) else {
            panic!("a third of the requests failed");
        };
        assert!(
            why.starts_with("error ratio 0.3333 (1 of 3 requests)"),
            "{why}"
        );
        // 1 of 3 requests between 10 and 100 ms: the p99 lies in the 100 ms bucket.
        let slow = sample(3.0, 0.0, &[("0.01", 2.0), ("0.1", 3.0), ("+Inf", 3.0)]);
        let Verdict::Fail(why) = judge(&start, &slow, &no_minimum(Some(50)), CICLO) else {
            panic!("the p99 is up to 100 ms");
        };
        assert_eq!(why, "p99 latency up to 100 ms is over 50 ms");
    }

    #[test]
    fn a_latency_limit_the_histogram_cannot_answer_fails_and_says_why() {
        let start = sample(0.0, 0.0, &[]);
        // A runtime that counts requests but exposes no latency histogram.
        let Verdict::Fail(why) = judge(
            &start,
            &sample(100.0, 0.0, &[]),
            &analysis(Some(200)),
            CICLO,
        ) else {
            panic!("the latency limit cannot be checked");
        };
        assert_eq!(
            why,
            "the canary pods' latency metric (ciclo_serve_request_duration_seconds) counted \
             none of the step's 100 requests, so maxP99LatencyMs 200 cannot be checked"
        );
        // Without a latency limit the histogram is not needed.
        assert!(matches!(
            judge(&start, &sample(100.0, 0.0, &[]), &analysis(None), CICLO),
            Verdict::Pass(_)
        ));
        // Slower than every bound: the message names the largest.
        let slow = sample(100.0, 0.0, &[("0.5", 0.0), ("2.5", 0.0), ("+Inf", 100.0)]);
        let Verdict::Fail(why) = judge(&start, &slow, &analysis(Some(200)), CICLO) else {
            panic!("every request took longer than 2.5 s");
        };
        assert_eq!(
            why,
            "p99 latency is beyond the largest latency bucket (2500 ms), over 200 ms"
        );
    }

    #[test]
    fn latencies_in_messages_read_as_milliseconds_without_float_noise() {
        // 0.00012 × 1000 is 0.12000000000000001 in floating point.
        assert_eq!(format!("{}", ms(0.00012)), "0.12");
        assert_eq!(format!("{}", ms(0.025)), "25");
        let start = sample(0.0, 0.0, &[("0.00012", 0.0), ("+Inf", 0.0)]);
        let end = sample(100.0, 0.0, &[("0.00012", 100.0), ("+Inf", 100.0)]);
        assert_eq!(
            judge(&start, &end, &analysis(Some(10)), CICLO),
            Verdict::Pass("100 requests, error ratio 0.0000, p99 ≤ 0.12 ms".into())
        );
    }

    #[test]
    fn a_runtimes_summary_p99_is_judged_when_it_has_no_histogram() {
        let start = sample(1000.0, 0.0, &[]);
        let with_p99 = |p99: f64| TrafficSample {
            summary_p99_seconds: Some(p99),
            ..sample(1100.0, 0.0, &[])
        };
        let triton = Some("nv_inference_request_summary_us");
        assert_eq!(
            judge(&start, &with_p99(0.00215), &analysis(Some(10)), triton),
            Verdict::Pass(
                "100 requests, error ratio 0.0000, p99 2.15 ms (runtime's summary)".into()
            )
        );
        assert_eq!(
            judge(&start, &with_p99(0.25), &analysis(Some(100)), triton),
            Verdict::Fail("p99 latency 250 ms (the runtime's own summary) is over 100 ms".into())
        );
        // Summaries off: nothing to judge the latency limit by, and the message says which
        // metric was missing.
        let Verdict::Fail(why) = judge(
            &start,
            &sample(1100.0, 0.0, &[]),
            &analysis(Some(100)),
            triton,
        ) else {
            panic!("the limit cannot be checked");
        };
        assert!(
            why.starts_with("the canary pods' latency metric (nv_inference_request_summary_us)"),
            "{why}"
        );
        let Verdict::Fail(why) = judge(
            &start,
            &sample(1100.0, 0.0, &[]),
            &analysis(Some(100)),
            None,
        ) else {
            panic!("no latency metric at all");
        };
        assert!(
            why.starts_with("spec.runtime.metrics names no latency metric"),
            "{why}"
        );
    }
}

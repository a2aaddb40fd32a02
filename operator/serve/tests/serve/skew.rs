//! Skew counts: given the profile of the data the model was trained on, each input named like
//! one of its numeric columns is counted into that column's bins, beside the training data's
//! share per bin, so the served values' distance from the training data can be measured from
//! `/metrics` alone (and summed across servers).

use crate::common::http;
use crate::v2::iris;
use ciclo_core::distance::{distance, shares};
use ciclo_core::expectations::DriftMeasure;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The profile ciclo's Dataset check writes, of `csv`, stored as `profile.json` in `dir`.
async fn profile_of(dir: &std::path::Path, csv: &str) -> String {
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap());
    let input = ciclo_profile::Input {
        location: "train.csv".into(),
        relative: "train.csv".into(),
        size: csv.len() as u64,
    };
    let outcome = ciclo_profile::profile(store, vec![input], None, None)
        .await
        .unwrap();
    let path = dir.join("profile.json");
    std::fs::write(&path, serde_json::to_vec(&outcome.profile).unwrap()).unwrap();
    format!("file://{}", path.display())
}

/// `ciclo_serve_<family>{input="…",bin="…"}` values of `input`, by bin.
fn series(metrics: &str, family: &str, input: &str) -> BTreeMap<u32, f64> {
    let head = format!("ciclo_serve_{family}{{input=\"{input}\",bin=\"");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&head))
        .map(|rest| {
            let (bin, value) = rest.split_once("\"} ").unwrap();
            (bin.parse().unwrap(), value.parse().unwrap())
        })
        .collect()
}

fn counts(metrics: &str) -> Vec<u64> {
    series(metrics, "input_baseline_bin_values_total", "x1")
        .into_values()
        .map(|v| v as u64)
        .collect()
}

/// 200 rows of x1 spread over [0, 1), shifted by `shift`, in one request.
async fn send(addr: std::net::SocketAddr, shift: f64) {
    let rows: Vec<[f64; 2]> = (0..200)
        .map(|i| [(i * 37 % 200) as f64 / 200.0 + shift, 1.0])
        .collect();
    let r = http::post(
        addr,
        "/v2/models/iris/infer",
        &json!({"inputs": [{"name": "input", "shape": [200, 2], "datatype": "FP64", "data": rows}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn inputs_are_counted_into_the_training_datas_bins_and_a_shift_shows_as_skew() {
    let dir = tempfile::tempdir().unwrap();
    // The training data: x1 over [0, 1); no column x2, so x2 has no bins.
    let mut csv = String::from("x1,label\n");
    for i in 0..1000 {
        csv.push_str(&format!("{},{}\n", i as f64 / 1000.0, i % 2));
    }
    let uri = profile_of(dir.path(), &csv).await;
    let (_m, s) = iris(&["--baseline-profile", &uri]).await;

    let metrics = http::get(s.addr, "/metrics").await.body;
    let baseline: Vec<f64> = series(&metrics, "input_baseline_share", "x1")
        .into_values()
        .collect();
    assert!(baseline.len() > 3, "{metrics}");
    assert!((baseline.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(series(&metrics, "input_baseline_share", "x2").is_empty());
    assert_eq!(counts(&metrics).iter().sum::<u64>(), 0);

    // Served like the training data: close to it.
    send(s.addr, 0.0).await;
    let before = counts(&http::get(s.addr, "/metrics").await.body);
    assert_eq!(before.iter().sum::<u64>(), 200);
    let same = distance(DriftMeasure::Psi, &baseline, &shares(&before));
    assert!(same < 0.1, "PSI {same} of the training distribution");

    // Shifted by half its range: the window's counts (after - before) are far from it.
    send(s.addr, 0.5).await;
    let after = counts(&http::get(s.addr, "/metrics").await.body);
    let window: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(window.iter().sum::<u64>(), 200);
    for (measure, at_least) in [
        (DriftMeasure::Psi, 1.0),
        (DriftMeasure::JensenShannon, 0.4),
        (DriftMeasure::LInfinity, 0.4),
    ] {
        let d = distance(measure, &baseline, &shares(&window));
        assert!(d > at_least, "{measure:?} {d} after the shift");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreadable_profile_leaves_serving_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profile.json"), "{not json").unwrap();
    for uri in [
        format!("file://{}/profile.json", dir.path().display()),
        format!("file://{}/missing.json", dir.path().display()),
    ] {
        let (_m, s) = iris(&["--baseline-profile", &uri]).await;
        send(s.addr, 0.0).await;
        let metrics = http::get(s.addr, "/metrics").await.body;
        assert!(!metrics.contains("input_baseline"), "{metrics}");
        assert!(metrics.contains("ciclo_serve_input_value_count{input=\"x1\"} 200"));
        s.stop().await.unwrap();
    }
}

//! A check split over the pods of an Indexed Job (`spec.sharding`) on the local cluster and
//! the real S3 server: three workers each hash and profile a share of the files, worker 0
//! merges them, and the version is the one a single pod finds for the same data.

use ciclo_e2e::resources::{
    STORE_KEYS, apply, ciclo, request_reconcile, restricted_namespace, s3_dataset, wait_status,
};
use ciclo_e2e::s3::{ARTIFACTS, artifact, endpoint, list, new_bucket, put};
use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A Dataset over `data/` of `bucket`, with `sharding`.
fn dataset(name: &str, bucket: &str, sharding: &str) -> String {
    let schema = "    minRows: 100
    columns:
    - {name: id, type: integer, nullable: false}
    - {name: score, type: float, min: 0, max: 1000}
";
    s3_dataset(name, bucket, &endpoint(), "**/*.csv", schema) + &format!("  sharding: {sharding}\n")
}

/// A csv batch of 300 rows: an id, a score spread over 0..1000, a city (30 values), a flag,
/// and a note empty on every seventh row.
fn batch(file: u64) -> String {
    let mut csv = String::from("id,score,city,flag,note\n");
    for i in 0..300u64 {
        let id = file * 1000 + i;
        let score = score(id);
        let note = if id.is_multiple_of(7) {
            String::new()
        } else {
            format!("n{}", id % 113)
        };
        csv.push_str(&format!(
            "{id},{score},city-{},{},{note}\n",
            id % 30,
            id.is_multiple_of(3)
        ));
    }
    csv
}

/// Row `id`'s score: spread over 0..1000.
fn score(id: u64) -> f64 {
    (id * 7919 % 10_000) as f64 / 10.0
}

/// The columns of a profile.json, by name.
fn columns(profile: &Value) -> BTreeMap<String, Value> {
    profile["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

async fn profile(ns: &str, dataset: &str, id: &str) -> Value {
    let text = artifact(&format!("{ns}/datasets/{dataset}/{id}/profile.json"))
        .await
        .unwrap_or_else(|| panic!("{dataset}'s profile.json of {id}"));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_check_sharded_over_three_pods_finds_the_version_and_profile_of_one() {
    let (client, ns) = restricted_namespace("dataset-shards").await;
    let bucket = new_bucket(&ns.name).await;
    for file in 0..3 {
        put(&bucket, &format!("data/part-{file:02}.csv"), batch(file)).await;
    }
    apply(&ns.name, STORE_KEYS);
    // Every check Job of the namespace, as it was created (they are deleted once recorded).
    let jobs: Arc<Mutex<BTreeMap<String, Job>>> = Arc::default();
    let seen = jobs.clone();
    let watch = tokio::spawn(
        watcher(
            Api::<Job>::namespaced(client.clone(), &ns.name),
            watcher::Config::default(),
        )
        .applied_objects()
        .for_each(move |j| {
            if let Ok(j) = j {
                seen.lock()
                    .unwrap()
                    .entry(j.metadata.name.clone().unwrap_or_default())
                    .or_insert(j);
            }
            async {}
        }),
    );
    apply(
        &ns.name,
        &dataset("sharded", &bucket, "{workers: 3, minFiles: 3}"),
    );
    apply(&ns.name, &dataset("single", &bucket, "{workers: 1}"));
    let api: Api<DynamicObject> = ciclo(&client, &ns.name, "Dataset");

    // The first checks: no version yet, so one pod each.
    let first = |name: &'static str| {
        let api = api.clone();
        async move {
            let s = wait_status(&api, name, "version 1", |s| s["latest"]["id"].is_string()).await;
            s["latest"]["id"].as_str().unwrap().to_string()
        }
    };
    let (v1, v1_single) = (first("sharded").await, first("single").await);
    assert_eq!(v1, v1_single, "the same data, the same version");

    // More data: the sharded Dataset's last version had 3 files, so its next check is sharded.
    for file in 3..8 {
        put(&bucket, &format!("data/part-{file:02}.csv"), batch(file)).await;
    }
    for name in ["sharded", "single"] {
        request_reconcile(&ns.name, "dataset", name, "2026-12-07T10:00:00Z");
    }
    let second = |name: &'static str| {
        let (api, v1) = (api.clone(), v1.clone());
        async move {
            wait_status(&api, name, "version 2", move |s| {
                s["latest"]["id"].as_str().is_some_and(|id| id != v1)
            })
            .await
        }
    };
    let (sharded, single) = (second("sharded").await, second("single").await);
    watch.abort();
    let v2 = sharded["latest"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        single["latest"]["id"].as_str(),
        Some(v2.as_str()),
        "the version id of one pod"
    );
    for field in ["rows", "files", "bytes", "verdict"] {
        assert_eq!(sharded["latest"][field], single["latest"][field], "{field}");
    }
    assert_eq!(sharded["latest"]["rows"], 2400);
    assert_eq!(sharded["latest"]["files"], 8);

    // The check that made it was an Indexed Job of three workers; the first one was not.
    let jobs = jobs.lock().unwrap().clone();
    let job_of = |check: &Value| {
        let name = check["lastCheck"]["job"].as_str().unwrap().to_string();
        jobs.get(&name)
            .cloned()
            .unwrap_or_else(|| panic!("Job {name} was never seen"))
    };
    let spec = job_of(&sharded).spec.unwrap();
    assert_eq!(
        (
            spec.completion_mode.as_deref(),
            spec.completions,
            spec.parallelism
        ),
        (Some("Indexed"), Some(3), Some(3))
    );
    let args = spec.template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap()
        .join(" ");
    assert!(args.contains("--shards 3"), "{args}");
    // (The API server writes the default mode, NonIndexed, into a Job that names none.)
    let indexed = |j: &Job| j.spec.as_ref().unwrap().completion_mode.as_deref() == Some("Indexed");
    assert!(!indexed(&job_of(&single)));
    let first_checks = jobs.values().filter(|j| !indexed(j)).count();
    assert_eq!(
        first_checks, 3,
        "both first checks and the single pod's second: one pod each"
    );

    // The profiles agree: counts, nulls, min, max and distinct counts exactly; mean to
    // rounding; quantiles within the KLL sketch's error.
    let values = |f: fn(u64) -> f64| {
        let mut v: Vec<f64> = (0..8)
            .flat_map(|file| (0..300).map(move |i| file * 1000 + i))
            .map(f)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let exact = BTreeMap::from([("id", values(|id| id as f64)), ("score", values(score))]);
    let (a, b) = (
        columns(&profile(&ns.name, "sharded", &v2).await),
        columns(&profile(&ns.name, "single", &v2).await),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, x) in &a {
        let y = &b[name];
        for field in [
            "type",
            "count",
            "nulls",
            "min",
            "max",
            "distinct",
            "topValues",
        ] {
            assert_eq!(x[field], y[field], "column {name}: {field}");
        }
        if let (Some(m), Some(n)) = (x["mean"].as_f64(), y["mean"].as_f64()) {
            assert!(
                (m - n).abs() <= 1e-9 * n.abs().max(1.0),
                "column {name}: mean {m} vs {n}"
            );
        }
        // Each reported quantile's rank in the exact values: within the KLL sketch's rank
        // error (k = 200: 1.3 % at 99 % confidence; 3 % allowed), whichever way it was merged.
        let Some(exact) = exact.get(name.as_str()) else {
            continue;
        };
        for profile in [x, y] {
            for q in profile["quantiles"].as_array().into_iter().flatten() {
                let (at, value) = (q["q"].as_f64().unwrap(), q["value"].as_f64().unwrap());
                let rank = exact.partition_point(|v| *v <= value) as f64 / exact.len() as f64;
                assert!(
                    (rank - at).abs() <= 0.03,
                    "column {name}: quantile {at} is {value}, of rank {rank}"
                );
            }
        }
    }

    // The workers' shares were removed once worker 0 wrote the version.
    let shares = list(ARTIFACTS, &format!("{}/datasets/sharded/shards/", ns.name)).await;
    assert!(shares.is_empty(), "{shares:?}");
}

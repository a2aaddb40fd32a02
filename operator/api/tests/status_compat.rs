//! Objects as a running ciclo wrote them (captured from the local control plane after
//! `make demo`: a Dataset, a TrainingRun, two ModelVersions and a ModelDeployment in
//! `fixtures/statuses-v1alpha1.json`) must be read by every later release and written back
//! unchanged: an upgraded operator carries on the status it finds, it never drops or
//! rewrites what its predecessor recorded. A change of a status type that breaks this fails
//! here, not in a user's cluster.

use ciclo_api::{Dataset, ModelDeployment, ModelVersion, TrainingRun};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const FIXTURES: &str = include_str!("fixtures/statuses-v1alpha1.json");

/// Reads `object` as `K` and writes it back; returns what it wrote.
fn round_trip<K: DeserializeOwned + Serialize>(object: &Value) -> Value {
    let typed: K = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{} is not readable: {e}", object["kind"]));
    serde_json::to_value(&typed).unwrap()
}

/// `value` without empty lists and maps: the types omit them (`deployedBy: []` is written by
/// the ModelVersion's deployments sync, and reads back as no field), which says the same.
fn without_empty(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !matches!(v, Value::Array(a) if a.is_empty()))
                .filter(|(_, v)| !matches!(v, Value::Object(o) if o.is_empty()))
                .map(|(k, v)| (k.clone(), without_empty(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty).collect()),
        other => other.clone(),
    }
}

#[test]
fn statuses_written_by_the_current_release_are_read_and_written_back_unchanged() {
    let objects: Vec<Value> = serde_json::from_str(FIXTURES).unwrap();
    let mut kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        ["Dataset", "TrainingRun", "ModelVersion", "ModelDeployment"]
    );
    for object in &objects {
        let written = match object["kind"].as_str().unwrap() {
            "Dataset" => round_trip::<Dataset>(object),
            "TrainingRun" => round_trip::<TrainingRun>(object),
            "ModelVersion" => round_trip::<ModelVersion>(object),
            "ModelDeployment" => round_trip::<ModelDeployment>(object),
            other => panic!("unexpected kind {other}"),
        };
        let name = &object["metadata"]["name"];
        assert!(
            object["status"].is_object(),
            "{name}: the fixture has a status"
        );
        assert_eq!(
            without_empty(&written["status"]),
            without_empty(&object["status"]),
            "{name}: status"
        );
    }
}

#[test]
fn the_status_words_of_runs_and_rollouts_are_the_ones_written_before_they_were_typed() {
    let objects: Vec<Value> = serde_json::from_str(FIXTURES).unwrap();
    let tr = objects.iter().find(|o| o["kind"] == "TrainingRun").unwrap();
    let run: TrainingRun = serde_json::from_value(tr.clone()).unwrap();
    let status = run.status.unwrap();
    assert!(
        status
            .runs
            .iter()
            .all(|r| r.phase == ciclo_api::training_run::RunPhase::Succeeded)
    );
    let md = objects
        .iter()
        .find(|o| o["kind"] == "ModelDeployment")
        .unwrap();
    let md: ModelDeployment = serde_json::from_value(md.clone()).unwrap();
    let history = md.status.unwrap().history;
    assert!(!history.is_empty());
    for (r, word) in history.iter().zip(["Promoted", "Promoted"]) {
        assert_eq!(r.result.as_str(), word);
    }
    // The other words, as the free strings of the earlier release wrote them.
    for word in ["Pending", "Running", "Succeeded", "Failed"] {
        let r: ciclo_api::training_run::RunRecord = serde_json::from_value(serde_json::json!(
            {"id": "r", "job": "j", "datasetVersion": "v", "phase": word}
        ))
        .unwrap();
        assert_eq!(r.phase.as_str(), word);
    }
    for word in ["Promoted", "RolledBack", "Superseded"] {
        let r: ciclo_api::model_deployment::RolloutRecord =
            serde_json::from_value(serde_json::json!(
                {"version": 2, "result": word, "generation": 1, "finished": "2026-12-01T00:00:00Z"}
            ))
            .unwrap();
        assert_eq!(r.result.as_str(), word);
    }
}

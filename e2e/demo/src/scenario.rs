//! The demo's scenario, once, for both `make demo` (which narrates it) and the e2e test
//! (which asserts on what it returns): two iterations of the cycle — data lands, is checked,
//! trains a model that is gated, served, and the next one rolled out by canary under load —
//! then a broken batch that must stop at the Dataset, then a third iteration that starts in
//! production: the requests shift, the deployment reports the skew, the labels sent for the
//! shifted requests become a version of the Dataset made of the capture, and a model trained
//! on it is canaried in under the shifted load.

use crate::cycle::{Cycle, is_blessed, metric};
use crate::data::{self, Rows};
use ciclo_e2e::load::Load;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Someone following along: told each part as it begins and ends, and each step.
pub trait Narrator {
    /// A part of the scenario begins (an iteration, the broken batch).
    fn part(&mut self, _title: &str) {}
    /// The part is over: the resources are where it left them.
    fn part_done(&mut self) {}
    /// A step ended `since` after the part's data landed.
    fn step(&mut self, since: Duration, what: &str);
    /// Anything else worth showing.
    fn note(&mut self, text: &str);
}

/// The steps of an iteration that are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Landed,
    /// The deployment reported its inputs skewed (iteration 3).
    Skewed,
    Accepted,
    Trained,
    Judged,
    Rollout,
    Serving,
}

/// A step: which stage it ended, what happened, and when from the data landing.
#[derive(Debug)]
pub struct Step {
    pub stage: Stage,
    pub what: String,
    pub since: Duration,
}

/// One iteration: a batch landed, and where it got to.
#[derive(Debug, Default)]
pub struct Iteration {
    pub batch: String,
    pub dataset_version: Value,
    pub run: Value,
    pub model_version: Value,
    /// (predicted, true) labels of unseen rows, asked of the served model.
    pub predictions: Vec<(String, String)>,
    /// The deployment's states seen during the rollout (phase, weight), in order.
    pub rollout: Vec<String>,
    /// The steady load during the rollout (iteration 2).
    pub load: Option<Load>,
    /// Each step and when it ended, from the data landing.
    pub steps: Vec<Step>,
}

/// The broken batch, and what did not move.
#[derive(Debug, Default)]
pub struct Rejection {
    pub dataset_version: Value,
    pub model_versions_before: usize,
    pub model_versions_after: usize,
    pub last_model_version_after: Option<i64>,
    pub serving_after: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub iterations: Vec<Iteration>,
    pub rejection: Rejection,
    /// `ciclo lineage` of version 2 and of version 3.
    pub lineage: String,
    pub production_lineage: String,
    /// Iteration 3's skew: the deployment's status when it reported it.
    pub skew: Value,
}

/// How the third iteration's requests differ from the data: another scanner reads every
/// texture measurement 30 % higher.
pub const SHIFTED: (&str, f64) = ("texture", 1.3);

/// How long to watch for anything downstream of a rejected batch moving.
const QUIET: Duration = Duration::from_secs(10);

/// Runs the scenario on `cycle` (its resources not yet applied).
pub async fn run(cycle: &Cycle, narrator: &mut impl Narrator) -> anyhow::Result<Outcome> {
    let unseen = Rows::parse(&data::batch("batch-3.csv"));
    narrator.note(&cycle.apply_example().await?);
    let mut outcome = Outcome::default();
    for (n, batch, title) in [
        (
            1,
            "batch-1.csv",
            "iteration 1: the first batch of data arrives",
        ),
        (
            2,
            "batch-2.csv",
            "iteration 2: more data arrives while version 1 serves",
        ),
    ] {
        narrator.part(title);
        let iteration = iterate(cycle, narrator, n, batch, &unseen).await?;
        narrator.part_done();
        outcome.iterations.push(iteration);
    }
    narrator.part("a broken batch arrives");
    outcome.rejection = reject(cycle, narrator, "broken-batch.csv").await?;
    narrator.part_done();
    narrator.part(
        "iteration 3: production shifts while version 2 serves (a new scanner reads texture 30 % higher)",
    );
    let (iteration, skew) = shift(cycle, narrator).await?;
    narrator.part_done();
    outcome.iterations.push(iteration);
    outcome.skew = skew;
    outcome.lineage = cycle.lineage(2)?;
    outcome.production_lineage = cycle.lineage(3)?;
    Ok(outcome)
}

/// Iteration 3: the shifted requests, their labels, the skew, the production data's version,
/// the model trained on it, its canary.
async fn shift(cycle: &Cycle, narrator: &mut impl Narrator) -> anyhow::Result<(Iteration, Value)> {
    let (part, factor) = SHIFTED;
    let shifted = Rows::parse(&data::batch("batch-3.csv")).scaled(part, factor);
    let mut it = Iteration {
        batch: "batch-3.csv, shifted".into(),
        ..Default::default()
    };
    let load = cycle.start_load(shifted.clone());
    let started = Instant::now();
    step(
        &mut it,
        narrator,
        started,
        Stage::Landed,
        "shifted requests start: steady load of batch-3's rows with every texture column × 1.3"
            .into(),
    );
    let accepted = cycle.labelled_requests(&shifted, 10, "scan").await?;
    narrator.note(&format!(
        "{} shifted rows asked about (ids scan-0 …), and their confirmed diagnoses sent to /v2/models/wdbc/feedback ({accepted} accepted)",
        shifted.rows.len()
    ));
    let s = cycle.skewed().await?;
    let limit =
        cycle.deployments.get(crate::cycle::NAME).await?.data["spec"]["skew"]["maxDistance"]
            .as_f64()
            .unwrap_or_default();
    let distances = s["skew"]["features"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (over, under): (Vec<&Value>, Vec<&Value>) = distances
        .iter()
        .partition(|f| f["distance"].as_f64().unwrap_or_default() > limit);
    let named = |f: &&Value| {
        format!(
            "{} {:.2}",
            f["feature"].as_str().unwrap_or("?"),
            f["distance"].as_f64().unwrap_or(f64::NAN)
        )
    };
    step(
        &mut it,
        narrator,
        started,
        Stage::Skewed,
        format!(
            "ModelDeployment reports its inputs Skewed, PSI over {limit}: {}; asked Dataset {} for a new check",
            over.iter().map(named).collect::<Vec<_>>().join(", "),
            crate::cycle::PRODUCTION
        ),
    );
    narrator.note(&format!(
        "the other {} features stay under it, the farthest {}",
        under.len(),
        under.first().map(named).unwrap_or_default()
    ));
    it.dataset_version = cycle.production_accepted().await?;
    let v = &it.dataset_version;
    let what = format!(
        "Dataset {} version {} accepted: {} labelled rows of {} captured, answered by version {}",
        crate::cycle::PRODUCTION,
        short(&v["id"]),
        v["rows"],
        v["capturedFrom"]["capturedRows"],
        v["capturedFrom"]["modelVersions"][0]
            .as_str()
            .unwrap_or("?")
    );
    step(&mut it, narrator, started, Stage::Accepted, what);
    it.run = cycle.trained_by(crate::cycle::PRODUCTION, 3).await?;
    let what = format!(
        "TrainingRun {} trained on it (Job {}): ModelVersion wdbc-3 registered",
        crate::cycle::PRODUCTION,
        it.run["job"].as_str().unwrap_or("?")
    );
    step(&mut it, narrator, started, Stage::Trained, what);
    it.model_version = cycle.judged(3).await?;
    let mv = &it.model_version;
    anyhow::ensure!(is_blessed(mv), "wdbc-3 was not blessed: {mv}");
    let what = format!(
        "wdbc-3 blessed: accuracy {:.3}, roc_auc {:.3}{}",
        metric(mv, "accuracy").unwrap_or(f64::NAN),
        metric(mv, "roc_auc").unwrap_or(f64::NAN),
        gates(mv)
    );
    step(&mut it, narrator, started, Stage::Judged, what);
    follow_rollout(cycle, narrator, &mut it, started, 3).await?;
    it.load = Some(stop_load(load, narrator, "shifted load").await);
    // Rows version 3 never saw (it was trained on batch-3's), shifted as production is now.
    let unseen = Rows::parse(&data::batch("batch-1.csv")).scaled(part, factor);
    it.predictions = cycle.predict(&unseen, 0..8).await?;
    Ok((it, s))
}

/// Follows the rollout of version `n` (a canary) until it serves all traffic, telling each
/// change.
async fn follow_rollout(
    cycle: &Cycle,
    narrator: &mut impl Narrator,
    it: &mut Iteration,
    landed: Instant,
    n: i64,
) -> anyhow::Result<()> {
    let s = cycle.canary(n).await?;
    it.rollout.push(rollout_state(&s));
    step(
        it,
        narrator,
        landed,
        Stage::Rollout,
        format!("canary of version {n}: {}", rollout_state(&s)),
    );
    loop {
        let s = cycle.deployment().await;
        let state = rollout_state(&s);
        if it.rollout.last() != Some(&state) {
            step(
                it,
                narrator,
                landed,
                Stage::Rollout,
                format!("rollout: {state}"),
            );
            it.rollout.push(state);
        }
        if s["servingVersion"] == n && s["phase"] == "Promoted" {
            break;
        }
        anyhow::ensure!(
            s["phase"] != "RolledBack" && landed.elapsed() < crate::cycle::STEP_TIMEOUT,
            "the rollout of version {n} did not promote: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    served(cycle, narrator, it, landed, n).await
}

/// Waits until version `n` serves all traffic, and tells `narrator`.
async fn served(
    cycle: &Cycle,
    narrator: &mut impl Narrator,
    it: &mut Iteration,
    landed: Instant,
    n: i64,
) -> anyhow::Result<()> {
    let s = cycle.serving(n).await?;
    step(
        it,
        narrator,
        landed,
        Stage::Serving,
        format!(
            "ModelDeployment serves version {n} with all traffic at {}",
            s["endpoint"].as_str().unwrap_or("?")
        ),
    );
    Ok(())
}

async fn iterate(
    cycle: &Cycle,
    narrator: &mut impl Narrator,
    n: i64,
    batch: &str,
    unseen: &Rows,
) -> anyhow::Result<Iteration> {
    let mut it = Iteration {
        batch: batch.into(),
        ..Default::default()
    };
    // From the second iteration on, users are being served while the new version rolls out.
    let load = (n > 1).then(|| cycle.start_load(Rows::parse(&data::batch("batch-3.csv"))));
    if load.is_some() {
        narrator.note("steady load started: one request every ~20 ms to the deployment (its Service, where Services route)");
    }
    let at = cycle.land(batch).await?;
    let landed = Instant::now();
    step(
        &mut it,
        narrator,
        landed,
        Stage::Landed,
        format!("{batch} landed in s3://{}/wdbc/", cycle.bucket),
    );

    it.dataset_version = cycle.checked(&at).await?;
    let v = &it.dataset_version;
    anyhow::ensure!(v["verdict"] == "Accepted", "{batch} was not accepted: {v}");
    let what = format!(
        "Dataset version {} accepted: {} rows in {} files",
        short(&v["id"]),
        v["rows"],
        v["files"]
    );
    step(&mut it, narrator, landed, Stage::Accepted, what);

    it.run = cycle.trained(n).await?;
    let what = format!(
        "TrainingRun trained on it (Job {}): ModelVersion wdbc-{n} registered",
        it.run["job"].as_str().unwrap_or("?")
    );
    step(&mut it, narrator, landed, Stage::Trained, what);

    it.model_version = cycle.judged(n).await?;
    let mv = &it.model_version;
    let verdict = if is_blessed(mv) {
        "blessed"
    } else {
        "NOT blessed"
    };
    let what = format!(
        "wdbc-{n} {verdict}: accuracy {:.3}, roc_auc {:.3}{}",
        metric(mv, "accuracy").unwrap_or(f64::NAN),
        metric(mv, "roc_auc").unwrap_or(f64::NAN),
        gates(mv)
    );
    let blessed = is_blessed(mv);
    anyhow::ensure!(blessed, "wdbc-{n} was not blessed: {what}");
    step(&mut it, narrator, landed, Stage::Judged, what);

    if n > 1 {
        follow_rollout(cycle, narrator, &mut it, landed, n).await?;
    } else {
        served(cycle, narrator, &mut it, landed, n).await?;
    }
    if let Some(load) = load {
        it.load = Some(stop_load(load, narrator, "steady load").await);
    }
    it.predictions = cycle.predict(unseen, 0..8).await?;
    Ok(it)
}

/// Stops `load` and tells `narrator` what it saw.
async fn stop_load(
    load: ciclo_e2e::load::Running,
    narrator: &mut impl Narrator,
    what: &str,
) -> Load {
    let load = load.stop().await;
    narrator.note(&format!(
        "{what}: {} requests, answered by version {}, {} failed",
        load.total(),
        load.answered
            .iter()
            .map(|(v, c)| format!("{v}: {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        load.failed.len()
    ));
    load
}

/// Tells `narrator` a step ended, and records it.
fn step(
    it: &mut Iteration,
    narrator: &mut impl Narrator,
    landed: Instant,
    stage: Stage,
    what: String,
) {
    let since = landed.elapsed();
    narrator.step(since, &what);
    it.steps.push(Step { stage, what, since });
}

impl Iteration {
    /// The iteration latency: data landed → the new version serving all traffic.
    pub fn latency(&self) -> Duration {
        self.time_of(Stage::Serving).unwrap_or_default()
    }

    /// When `stage` ended, from the data landing (its last step, for the rollout).
    pub fn time_of(&self, stage: Stage) -> Option<Duration> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.stage == stage)
            .map(|s| s.since)
    }
}

async fn reject(
    cycle: &Cycle,
    narrator: &mut impl Narrator,
    batch: &str,
) -> anyhow::Result<Rejection> {
    let before = cycle.model_versions().await?;
    let at = cycle.land(batch).await?;
    let landed = Instant::now();
    narrator.step(
        Duration::ZERO,
        &format!("{batch} landed (its mean_radius column is text)"),
    );
    let version = cycle.checked(&at).await?;
    anyhow::ensure!(
        version["verdict"] == "Rejected",
        "{batch} was not rejected: {version}"
    );
    narrator.step(
        landed.elapsed(),
        &format!(
            "Dataset version {} REJECTED: {}",
            short(&version["id"]),
            version["reasons"]
                .as_array()
                .map(|r| r
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; "))
                .unwrap_or_default()
        ),
    );
    // Nothing downstream may move: no run, no model version, no rollout.
    tokio::time::sleep(QUIET).await;
    let run = cycle.run_status().await;
    let deployment = cycle.deployment().await;
    let rejection = Rejection {
        dataset_version: version,
        model_versions_before: before,
        model_versions_after: cycle.model_versions().await?,
        last_model_version_after: run["lastModelVersion"].as_i64(),
        serving_after: deployment["servingVersion"].as_i64(),
    };
    narrator.step(
        landed.elapsed(),
        &format!(
            "{} s later: still {} model versions, version {} serving, no training run started",
            QUIET.as_secs(),
            rejection.model_versions_after,
            rejection.serving_after.unwrap_or_default()
        ),
    );
    Ok(rejection)
}

/// A content id, shortened for people.
fn short(id: &Value) -> String {
    id.as_str().unwrap_or("?").chars().take(12).collect()
}

/// The gates' verdicts of a judged ModelVersion, in a few words.
fn gates(mv: &Value) -> String {
    let verdicts: Vec<String> = mv["status"]["gates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["message"].as_str().map(String::from))
        .collect();
    if verdicts.is_empty() {
        String::new()
    } else {
        format!(" ({})", verdicts.join("; "))
    }
}

/// A deployment's rollout state in a few words.
fn rollout_state(s: &Value) -> String {
    let phase = s["phase"].as_str().unwrap_or("-");
    match (s["canaryVersion"].as_i64(), s["canaryWeight"].as_i64()) {
        (Some(c), Some(w)) => format!("{phase}, version {c} at {w}% of the pods"),
        (Some(c), None) => format!("{phase}, version {c} starting"),
        _ => format!(
            "{phase}, version {} serving",
            s["servingVersion"].as_i64().unwrap_or_default()
        ),
    }
}

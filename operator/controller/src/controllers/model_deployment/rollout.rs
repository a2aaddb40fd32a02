//! The rollout, as a pure step from what is observed to what should be: which version
//! Deployments exist with how many replicas, and the status that records where the rollout
//! is. Everything a restarted operator needs to resume at the same step is in the status.
//!
//! - No version serves yet: the selected version comes up at full size, and serves.
//! - `Rolling`: the new version comes up at full size beside the old, then the old goes.
//! - `Canary`: the stable version stays at full size; at each step the canary gets the
//!   replicas for its weight, and once they are all ready the step holds for its pause; the
//!   canary pods' traffic over the step is then judged (with `analysis.minRequests: 0`, a
//!   step that no request reached passes on its pause alone). A failing step removes the canary
//!   (`RolledBack`, never retried for the same spec generation); the last passing step
//!   promotes it, and the old version is removed (its pods drain as they stop).

use super::analysis::{self, Verdict};
use ciclo_api::conditions::{self, Set};
use ciclo_api::model_deployment::{
    ModelDeployment, ModelDeploymentStatus, Phase, RolloutRecord, RolloutResult, StrategyType,
    TrafficSample,
};
use jiff::{SignedDuration, Timestamp};
use kube::runtime::events::EventType;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a version's pods may take to become ready before the rollout gives up on them.
pub const READY_DEADLINE: Duration = Duration::from_secs(300);
/// How often a rollout waiting for pods looks again (for restarts, and for the deadline).
const POD_RECHECK: Duration = Duration::from_secs(3);
/// How often a step waiting for traffic looks again.
const TRAFFIC_RECHECK: Duration = Duration::from_secs(5);
/// Rollouts kept in the status.
const HISTORY: usize = 10;

/// The pods of one version's Deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VersionPods {
    pub ready: i32,
    pub restarts: i32,
}

/// What the planner sees.
pub struct View<'a> {
    pub md: &'a ModelDeployment,
    /// The version the spec selects now (`None`: none can be served yet).
    pub desired: Option<i64>,
    pub pods: &'a BTreeMap<i64, VersionPods>,
    /// The canary pods' counters now, when the caller has read them.
    pub sample: Option<TrafficSample>,
    pub now: Timestamp,
}

/// What should be.
#[derive(Debug, Default)]
pub struct Plan {
    /// Each version that should have a Deployment, with its replicas; any other goes.
    pub replicas: BTreeMap<i64, i32>,
    pub conditions: Vec<Set>,
    pub event: Option<(EventType, &'static str, String)>,
    pub requeue: Option<Duration>,
    /// The planner needs the canary's counters: read them and plan again.
    pub needs_sample: bool,
}

/// Replicas the canary gets at `weight` percent of `total` (at least one, at most all).
pub fn canary_replicas(total: i32, weight: i32) -> i32 {
    let total = total.max(1);
    ((total * weight + 99) / 100).clamp(1, total)
}

fn since(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(then)).unwrap_or_default()
}

/// Whether `version` was rolled back under this spec generation (so it is not tried again).
fn rolled_back(s: &ModelDeploymentStatus, version: i64, generation: i64) -> bool {
    s.history.iter().any(|h| {
        h.version == version && h.result == RolloutResult::RolledBack && h.generation == generation
    })
}

/// Plans the next step, editing `s` (the status to write).
pub fn plan(v: &View, s: &mut ModelDeploymentStatus) -> Plan {
    let mut r = Rollout::new(v, s);
    r.supersede();
    let Some(serving) = r.s.serving_version else {
        if let Some(d) = v.desired {
            r.first_version(d);
        }
        return r.plan;
    };
    r.plan.replicas.insert(serving, r.total);
    if let Some(canary) = r.canary(serving) {
        r.advance(Change { serving, canary });
    }
    r.plan
}

/// The version serving all traffic and the one rolling out to replace it.
#[derive(Clone, Copy)]
struct Change {
    serving: i64,
    canary: i64,
}

/// One planning step: what is observed, the status being edited and the plan so far.
struct Rollout<'a, 'v> {
    v: &'a View<'v>,
    s: &'a mut ModelDeploymentStatus,
    plan: Plan,
    /// Replicas a version at full size gets.
    total: i32,
    generation: i64,
}

impl<'a, 'v> Rollout<'a, 'v> {
    fn new(v: &'a View<'v>, s: &'a mut ModelDeploymentStatus) -> Self {
        let spec = &v.md.spec;
        Rollout {
            v,
            s,
            plan: Plan::default(),
            total: spec
                .autoscaling
                .as_ref()
                .map_or(spec.replicas, |a| a.min_replicas),
            generation: v.md.metadata.generation.unwrap_or_default(),
        }
    }

    /// Adds a finished rollout to the history, newest first.
    fn record(&mut self, version: i64, from: Option<i64>, result: RolloutResult, reason: String) {
        self.s.history.insert(
            0,
            RolloutRecord {
                version,
                from,
                result,
                reason,
                generation: self.generation,
                finished: self.v.now,
            },
        );
        self.s.history.truncate(HISTORY);
    }

    /// Forgets the rollout in progress.
    fn end(&mut self) {
        let s = &mut *self.s;
        s.canary_version = None;
        s.canary_weight = None;
        s.step_index = None;
        s.step_started = None;
        s.step_baseline = None;
        s.rollout_started = None;
    }

    /// A newer selection (a newly blessed version, a new pin) replaces the canary in flight.
    fn supersede(&mut self) {
        let Some(c) = self.s.canary_version else {
            return;
        };
        if Some(c) == self.v.desired {
            return;
        }
        let instead = match self.v.desired {
            Some(d) => format!("version {d} was selected instead"),
            None => "no version is selected any more".into(),
        };
        let serving = self.s.serving_version;
        self.record(c, serving, RolloutResult::Superseded, instead);
        self.end();
    }

    /// The first version: nothing to compare with, so it simply comes up.
    fn first_version(&mut self, d: i64) {
        let total = self.total;
        self.plan.replicas.insert(d, total);
        let started = *self.s.rollout_started.get_or_insert(self.v.now);
        let ready = self.v.pods.get(&d).copied().unwrap_or_default().ready;
        if ready >= total.max(1) {
            self.end();
            self.s.serving_version = Some(d);
            self.s.phase = Some(Phase::Promoted);
            self.record(d, None, RolloutResult::Promoted, "the first version".into());
            self.plan.event = Some((
                EventType::Normal,
                "Promoted",
                format!("version {d} serves all traffic"),
            ));
            self.plan.conditions = serving_conditions(d);
            return;
        }
        let waited = since(self.v.now, started);
        let message = format!("version {d}: {ready} of {total} pods ready");
        if waited > READY_DEADLINE {
            self.s.phase = Some(Phase::Degraded);
            self.plan.conditions = conditions::stalled(
                "PodsNotReady",
                format!("{message} after {} s", READY_DEADLINE.as_secs()),
            );
        } else {
            self.s.phase = Some(Phase::Progressing);
            self.plan.conditions = conditions::reconciling("RollingOut", message);
            self.plan.requeue =
                Some(READY_DEADLINE.saturating_sub(waited) + Duration::from_secs(1));
        }
    }

    /// The version rolling out beside `serving`: the one in flight, or the selected one if
    /// it may start now. None when the serving version simply serves on.
    fn canary(&mut self, serving: i64) -> Option<i64> {
        let s = &mut *self.s;
        match (s.canary_version, self.v.desired) {
            (Some(c), _) => Some(c),
            (None, Some(d)) if d != serving && !rolled_back(s, d, self.generation) => {
                s.canary_version = Some(d);
                s.rollout_started = Some(self.v.now);
                if self.v.md.spec.strategy.type_ == StrategyType::Canary {
                    s.step_index = Some(0);
                }
                s.phase = Some(Phase::Progressing);
                self.plan.event = Some((
                    EventType::Normal,
                    "RolloutStarted",
                    format!("rolling out version {d} to replace version {serving}"),
                ));
                Some(d)
            }
            (None, desired) => {
                self.plan.conditions = match (s.phase, desired) {
                    (Some(Phase::RolledBack), Some(d)) if d != serving => conditions::stalled(
                        "RolledBack",
                        format!(
                            "version {d} was rolled back{}; version {serving} serves all traffic",
                            rollback_reason(s, d)
                        ),
                    ),
                    _ => {
                        s.phase = Some(Phase::Promoted);
                        serving_conditions(serving)
                    }
                };
                None
            }
        }
    }

    /// Moves a rollout in progress on: a canary whose pods restart is rolled back at once;
    /// otherwise the strategy decides.
    fn advance(&mut self, c: Change) {
        let pods = self.v.pods.get(&c.canary).copied().unwrap_or_default();
        if pods.restarts > 0 {
            let times = plural(pods.restarts.into(), "time");
            self.rollback(c, format!("its pods restarted {times}"));
            return;
        }
        let waited = self
            .s
            .rollout_started
            .map_or(Duration::ZERO, |t| since(self.v.now, t));
        match (self.s.step_index, self.v.md.spec.strategy.type_) {
            (Some(index), StrategyType::Canary) => self.canary_step(c, index, pods, waited),
            _ => self.rolling(c, pods, waited),
        }
    }

    /// Rolling: the new version at full size, then the switch.
    fn rolling(&mut self, c: Change, pods: VersionPods, waited: Duration) {
        let total = self.total;
        self.plan.replicas.insert(c.canary, total);
        if pods.ready >= total.max(1) {
            self.promote(c, "all its pods ready".into());
        } else if waited > READY_DEADLINE {
            let deadline = READY_DEADLINE.as_secs();
            self.rollback(
                c,
                format!("{} of {total} pods ready after {deadline} s", pods.ready),
            );
        } else {
            self.plan.conditions = conditions::reconciling(
                "RollingOut",
                format!("version {}: {} of {total} pods ready", c.canary, pods.ready),
            );
            self.plan.requeue = Some(POD_RECHECK);
        }
    }

    /// Canary step `index`: its pods come up, it holds for its pause, then its traffic is
    /// judged.
    fn canary_step(&mut self, c: Change, index: i32, pods: VersionPods, waited: Duration) {
        let steps = &self.v.md.spec.strategy.steps;
        let Some(step) = steps.get(index as usize) else {
            let how = if steps.is_empty() {
                "spec.strategy.steps is empty: no step to hold"
            } else {
                "past the last of spec.strategy.steps"
            };
            self.promote(c, how.into());
            return;
        };
        let want = canary_replicas(self.total, step.weight);
        self.plan.replicas.insert(c.canary, want);
        let Some(started) = self.s.step_started else {
            self.start_step(c, index, want, pods, waited);
            return;
        };
        let held = since(self.v.now, started);
        if held < duration(&step.pause) {
            self.s.phase = Some(Phase::Progressing);
            self.plan.conditions = progressing(format!(
                "step {} of {}: version {} at weight {}",
                index + 1,
                steps.len(),
                c.canary,
                step.weight
            ));
            self.plan.requeue = Some(duration(&step.pause) - held);
            return;
        }
        self.judge_step(c, index);
    }

    /// Starts step `index` once its `want` pods are ready, with the canary's counters then
    /// as the baseline of its analysis.
    fn start_step(
        &mut self,
        c: Change,
        index: i32,
        want: i32,
        pods: VersionPods,
        waited: Duration,
    ) {
        let canary = c.canary;
        if pods.ready < want {
            if waited > READY_DEADLINE {
                let deadline = READY_DEADLINE.as_secs();
                let ready = pods.ready;
                self.rollback(
                    c,
                    format!("{ready} of {want} canary pods ready after {deadline} s"),
                );
            } else {
                self.s.phase = Some(Phase::Progressing);
                self.plan.conditions = progressing(format!(
                    "step {}: waiting for {want} pods of version {canary} ({} ready)",
                    index + 1,
                    pods.ready
                ));
                // A crashing pod changes no Deployment field the watch would see: look again.
                self.plan.requeue = Some(POD_RECHECK);
            }
            return;
        }
        let Some(sample) = self.v.sample.clone() else {
            self.plan.needs_sample = true;
            return;
        };
        let steps = &self.v.md.spec.strategy.steps;
        let step = &steps[index as usize];
        // The step starts now: its pause and its traffic count from here.
        let s = &mut *self.s;
        s.step_started = Some(self.v.now);
        s.step_baseline = Some(sample);
        s.canary_weight = Some(step.weight);
        s.phase = Some(Phase::Progressing);
        self.plan.conditions = progressing(format!(
            "step {} of {}: version {canary} at weight {} for {}",
            index + 1,
            steps.len(),
            step.weight,
            step.pause
        ));
        self.plan.requeue = Some(duration(&step.pause));
    }

    /// Judges step `index`'s traffic once its pause is over: the next step, promotion, a
    /// wait for more requests, or a rollback.
    fn judge_step(&mut self, c: Change, index: i32) {
        let Some(sample) = self.v.sample.clone() else {
            self.plan.needs_sample = true;
            return;
        };
        let md = self.v.md;
        let steps = &md.spec.strategy.steps;
        let canary = c.canary;
        let baseline = self.s.step_baseline.clone().unwrap_or_default();
        let metrics = md.spec.runtime.metrics_query();
        let latency = metrics.latency.as_ref().map(|l| l.name.as_str());
        match analysis::judge(&baseline, &sample, &md.spec.analysis, latency) {
            Verdict::Fail(why) => {
                self.rollback(c, format!("analysis of step {}: {why}", index + 1));
            }
            Verdict::Insufficient(n) => {
                self.s.phase = Some(Phase::Paused);
                self.plan.conditions = conditions::reconciling(
                    "WaitingForTraffic",
                    format!(
                        "step {}: version {canary} has served {n} of the {} requests the analysis needs (analysis.minRequests), counted by {}",
                        index + 1,
                        md.spec.analysis.min_requests,
                        metrics.counted_by()
                    ),
                );
                self.plan.requeue = Some(TRAFFIC_RECHECK);
            }
            Verdict::Pass(summary) if index as usize + 1 >= steps.len() => {
                let passed = plural(steps.len() as i64, "step");
                self.promote(c, format!("{passed} passed; the last: {summary}"));
            }
            Verdict::Pass(summary) => {
                let s = &mut *self.s;
                s.step_index = Some(index + 1);
                s.step_started = None;
                s.step_baseline = None;
                s.rollout_started = Some(self.v.now);
                s.phase = Some(Phase::Progressing);
                let weight = steps[index as usize].weight;
                self.plan.event = Some((
                    EventType::Normal,
                    "StepPassed",
                    format!(
                        "version {canary}, step {} at weight {weight}: {summary}",
                        index + 1
                    ),
                ));
                self.plan.conditions = progressing(format!("step {} passed: {summary}", index + 1));
                self.plan.requeue = Some(Duration::from_millis(100));
            }
        }
    }

    /// The canary serves all traffic; the old version goes.
    fn promote(&mut self, c: Change, how: String) {
        let Change { serving, canary } = c;
        self.plan.replicas = BTreeMap::from([(canary, self.total)]);
        self.record(canary, Some(serving), RolloutResult::Promoted, how);
        self.end();
        self.s.serving_version = Some(canary);
        self.s.phase = Some(Phase::Promoted);
        self.plan.event = Some((
            EventType::Normal,
            "Promoted",
            format!("version {canary} serves all traffic (replacing version {serving})"),
        ));
        self.plan.conditions = serving_conditions(canary);
    }

    /// The canary is removed and not tried again under this spec generation.
    fn rollback(&mut self, c: Change, reason: String) {
        let Change { serving, canary } = c;
        self.plan.replicas.remove(&canary);
        self.record(
            canary,
            Some(serving),
            RolloutResult::RolledBack,
            reason.clone(),
        );
        self.end();
        self.s.phase = Some(Phase::RolledBack);
        self.plan.event = Some((
            EventType::Warning,
            "RolledBack",
            format!("version {canary} rolled back: {reason}; version {serving} serves all traffic"),
        ));
        self.plan.conditions = conditions::stalled(
            "RolledBack",
            format!(
                "version {canary} was rolled back ({reason}); version {serving} serves all traffic"
            ),
        );
    }
}

/// " (why)" for the rollback of `version` in the history, when it says why.
fn rollback_reason(s: &ModelDeploymentStatus, version: i64) -> String {
    s.history
        .iter()
        .find(|h| h.version == version && h.result == RolloutResult::RolledBack)
        .filter(|h| !h.reason.is_empty())
        .map(|h| format!(" ({})", h.reason))
        .unwrap_or_default()
}

/// The condition of a canary rollout moving on.
fn progressing(message: String) -> Vec<Set> {
    conditions::reconciling("Canary", message)
}

/// `n` and the word, plural unless `n` is 1.
fn plural(n: i64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn serving_conditions(version: i64) -> Vec<Set> {
    conditions::ready("Serving", format!("version {version} serves all traffic"))
}

/// A duration of the spec (a step's pause "30s", a window "10m"); admission checked it is
/// one.
pub(super) fn duration(s: &str) -> Duration {
    s.parse::<SignedDuration>()
        .ok()
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(strategy: &str, analysis: &str) -> ModelDeployment {
        serde_yaml::from_str(&format!(
            "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: web, namespace: ml, generation: 1}}\nspec: {{model: {{name: iris}}, replicas: 2, strategy: {strategy}, analysis: {analysis}}}"
        ))
        .unwrap()
    }

    const ANALYSIS: &str = "{minRequests: 10, maxErrorRatio: 0.05}";
    const NO_MINIMUM: &str = "{minRequests: 0, maxErrorRatio: 0.05, maxP99LatencyMs: 50}";

    const CANARY: &str =
        "{type: Canary, steps: [{weight: 10, pause: 10s}, {weight: 50, pause: 10s}]}";

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn traffic(requests: f64, errors: f64) -> TrafficSample {
        TrafficSample {
            requests,
            errors,
            ..Default::default()
        }
    }

    struct Sim {
        md: ModelDeployment,
        status: ModelDeploymentStatus,
        pods: BTreeMap<i64, VersionPods>,
    }

    impl Sim {
        fn new(strategy: &str) -> Self {
            Self::with_analysis(strategy, ANALYSIS)
        }

        fn with_analysis(strategy: &str, analysis: &str) -> Self {
            Sim {
                md: md(strategy, analysis),
                status: Default::default(),
                pods: BTreeMap::new(),
            }
        }

        fn step(&mut self, desired: i64, now: Timestamp, sample: Option<TrafficSample>) -> Plan {
            self.select(Some(desired), now, sample)
        }

        /// A step where the spec may select no version at all.
        fn select(
            &mut self,
            desired: Option<i64>,
            now: Timestamp,
            sample: Option<TrafficSample>,
        ) -> Plan {
            let view = View {
                md: &self.md,
                desired,
                pods: &self.pods,
                sample,
                now,
            };
            plan(&view, &mut self.status)
        }

        fn ready(&mut self, version: i64, ready: i32) {
            self.pods
                .insert(version, VersionPods { ready, restarts: 0 });
        }
    }

    #[test]
    fn the_first_version_comes_up_at_full_size_and_serves() {
        let mut sim = Sim::new(CANARY);
        let p = sim.step(1, at(0), None);
        assert_eq!(p.replicas, BTreeMap::from([(1, 2)]));
        assert_eq!(sim.status.phase, Some(Phase::Progressing));
        sim.ready(1, 2);
        let p = sim.step(1, at(5), None);
        assert_eq!(sim.status.serving_version, Some(1));
        assert_eq!(sim.status.phase, Some(Phase::Promoted));
        assert_eq!(p.event.unwrap().1, "Promoted");
    }

    fn serving_v1() -> Sim {
        serving_v1_with(ANALYSIS)
    }

    fn serving_v1_with(analysis: &str) -> Sim {
        let mut sim = Sim::with_analysis(CANARY, analysis);
        sim.ready(1, 2);
        sim.step(1, at(0), None);
        sim
    }

    /// Every text a person reads from a plan and the status: conditions, the Event, history.
    fn texts(p: &Plan, s: &ModelDeploymentStatus) -> Vec<String> {
        p.conditions
            .iter()
            .map(|c| c.message.clone())
            .chain(p.event.iter().map(|e| e.2.clone()))
            .chain(s.history.iter().map(|h| h.reason.clone()))
            .collect()
    }

    #[test]
    fn a_canary_goes_step_by_step_and_is_promoted() {
        let mut sim = serving_v1();
        // Step 1: one canary pod beside the two stable ones.
        let p = sim.step(2, at(10), None);
        assert_eq!(p.replicas, BTreeMap::from([(1, 2), (2, 1)]));
        assert_eq!(sim.status.canary_version, Some(2));
        sim.ready(2, 1);
        let p = sim.step(2, at(12), None);
        assert!(p.needs_sample, "the step's baseline is read when it starts");
        let p = sim.step(2, at(12), Some(traffic(0.0, 0.0)));
        assert_eq!(sim.status.canary_weight, Some(10));
        assert_eq!(p.requeue, Some(Duration::from_secs(10)));
        // Mid-pause: nothing is judged.
        let p = sim.step(2, at(15), None);
        assert!(!p.needs_sample && p.requeue == Some(Duration::from_secs(7)));
        // End of the pause: 40 requests, 1 error (2.5 % < 5 %): the next step.
        let p = sim.step(2, at(22), Some(traffic(40.0, 1.0)));
        assert_eq!(sim.status.step_index, Some(1), "{p:?}");
        assert_eq!(p.event.unwrap().1, "StepPassed");
        let p = sim.step(2, at(23), None);
        assert_eq!(p.replicas[&2], 1, "50 % of 2 replicas is 1");
        sim.step(2, at(23), Some(traffic(40.0, 1.0)));
        // The last step passes: promoted, the old version goes.
        let p = sim.step(2, at(34), Some(traffic(140.0, 2.0)));
        assert_eq!(p.replicas, BTreeMap::from([(2, 2)]));
        assert_eq!(sim.status.serving_version, Some(2));
        assert_eq!(sim.status.canary_version, None);
        assert_eq!(sim.status.phase, Some(Phase::Promoted));
        assert_eq!(sim.status.history[0].result, RolloutResult::Promoted);
    }

    #[test]
    fn a_failing_canary_is_rolled_back_and_not_tried_again() {
        let mut sim = serving_v1();
        sim.step(3, at(10), None);
        sim.ready(3, 1);
        sim.step(3, at(11), Some(traffic(0.0, 0.0)));
        let p = sim.step(3, at(22), Some(traffic(50.0, 20.0)));
        assert_eq!(p.replicas, BTreeMap::from([(1, 2)]), "the canary goes");
        assert_eq!(sim.status.phase, Some(Phase::RolledBack));
        assert_eq!(sim.status.serving_version, Some(1));
        let (kind, reason, note) = p.event.unwrap();
        assert_eq!((kind, reason), (EventType::Warning, "RolledBack"));
        assert!(note.contains("error ratio 0.4000"), "{note}");
        // Still selected, same generation: not rolled out again.
        let p = sim.step(3, at(60), None);
        assert_eq!(p.replicas, BTreeMap::from([(1, 2)]));
        assert_eq!(sim.status.canary_version, None);
        assert!(p.conditions.iter().any(|c| c.reason == "RolledBack"));
        // A newer version is.
        sim.step(4, at(70), None);
        assert_eq!(sim.status.canary_version, Some(4));
    }

    #[test]
    fn a_canary_that_never_gets_ready_or_crashes_is_rolled_back() {
        let mut sim = serving_v1();
        sim.step(2, at(10), None);
        let p = sim.step(2, at(10 + READY_DEADLINE.as_secs() as i64 + 1), None);
        assert_eq!(sim.status.phase, Some(Phase::RolledBack), "{p:?}");
        let mut sim = serving_v1();
        sim.step(2, at(10), None);
        sim.pods.insert(
            2,
            VersionPods {
                ready: 0,
                restarts: 2,
            },
        );
        sim.step(2, at(11), None);
        assert_eq!(sim.status.phase, Some(Phase::RolledBack));
        assert!(sim.status.history[0].reason.contains("restarted 2 times"));
    }

    #[test]
    fn too_little_traffic_pauses_the_step() {
        let mut sim = serving_v1();
        sim.step(2, at(10), None);
        sim.ready(2, 1);
        sim.step(2, at(11), Some(traffic(0.0, 0.0)));
        let p = sim.step(2, at(22), Some(traffic(3.0, 0.0)));
        assert_eq!(sim.status.phase, Some(Phase::Paused));
        assert_eq!(sim.status.step_index, Some(0));
        assert_eq!(p.requeue, Some(TRAFFIC_RECHECK));
        assert_eq!(
            p.conditions[0].message,
            "step 1: version 2 has served 3 of the 10 requests the analysis needs (analysis.minRequests), \
             counted by ciclo_serve_requests_total on :8080/metrics"
        );
        // No traffic at all is too little too, when the analysis asks for some.
        let mut sim = serving_v1();
        sim.step(2, at(10), None);
        sim.ready(2, 1);
        sim.step(2, at(11), Some(traffic(0.0, 0.0)));
        sim.step(2, at(22), Some(traffic(0.0, 0.0)));
        sim.step(2, at(600), Some(traffic(0.0, 0.0)));
        assert_eq!(sim.status.phase, Some(Phase::Paused));
        assert_eq!(sim.status.canary_version, Some(2));
    }

    #[test]
    fn a_canary_with_min_requests_0_and_no_traffic_advances_after_each_pause_and_is_promoted() {
        let mut sim = serving_v1_with(NO_MINIMUM);
        let quiet = || Some(traffic(0.0, 0.0));
        // Step 1 (weight 10) starts once its pod is ready, at 12 s.
        sim.step(2, at(10), None);
        sim.ready(2, 1);
        assert!(sim.step(2, at(12), None).needs_sample);
        let p = sim.step(2, at(12), quiet());
        assert_eq!(p.requeue, Some(Duration::from_secs(10)));
        // Mid-pause: held, nothing read.
        let p = sim.step(2, at(17), None);
        assert!(!p.needs_sample && p.requeue == Some(Duration::from_secs(5)));
        assert_eq!(sim.status.step_index, Some(0));
        // End of the pause, no request came: the step passes on time alone.
        assert!(sim.step(2, at(22), None).needs_sample);
        let p = sim.step(2, at(22), quiet());
        assert_eq!(sim.status.step_index, Some(1), "{p:?}");
        assert_eq!(sim.status.phase, Some(Phase::Progressing));
        let (kind, reason, note) = p.event.clone().unwrap();
        assert_eq!((kind, reason), (EventType::Normal, "StepPassed"));
        assert_eq!(
            note,
            "version 2, step 1 at weight 10: no requests reached the canary, nothing to judge (analysis.minRequests is 0)"
        );
        // Step 2 (weight 50) starts at once (its one pod is ready) and holds 10 s.
        let p = sim.step(2, at(22), quiet());
        assert_eq!(sim.status.canary_weight, Some(50));
        assert_eq!(p.requeue, Some(Duration::from_secs(10)));
        let p = sim.step(2, at(31), None);
        assert_eq!(p.requeue, Some(Duration::from_secs(1)));
        assert_eq!(
            sim.status.serving_version,
            Some(1),
            "not before the pause ends"
        );
        // The last pause ends: promoted, never paused for traffic on the way.
        let p = sim.step(2, at(32), quiet());
        assert_eq!(p.replicas, BTreeMap::from([(2, 2)]));
        assert_eq!(sim.status.serving_version, Some(2));
        assert_eq!(sim.status.phase, Some(Phase::Promoted));
        assert_eq!(sim.status.history[0].result, RolloutResult::Promoted);
        assert_eq!(
            sim.status.history[0].reason,
            "2 steps passed; the last: no requests reached the canary, nothing to judge (analysis.minRequests is 0)"
        );
    }

    #[test]
    fn with_min_requests_0_the_requests_a_step_saw_are_still_judged() {
        // `fast` of `all` requests under 50 ms, the rest between 50 and 100 ms.
        let timed = |fast: f64, all: f64, errors: f64| TrafficSample {
            requests: all,
            errors,
            latency_buckets: [("0.05", fast), ("0.1", all), ("+Inf", all)]
                .into_iter()
                .map(|(le, n)| (le.to_string(), n))
                .collect(),
            ..Default::default()
        };
        // 3 fast, healthy requests in step 1: fewer than any usual minimum, judged and passed.
        let mut sim = serving_v1_with(NO_MINIMUM);
        sim.step(2, at(10), None);
        sim.ready(2, 1);
        sim.step(2, at(11), Some(timed(0.0, 0.0, 0.0)));
        let p = sim.step(2, at(21), Some(timed(3.0, 3.0, 0.0)));
        assert_eq!(sim.status.step_index, Some(1));
        assert_eq!(
            p.event.unwrap().2,
            "version 2, step 1 at weight 10: 3 requests, error ratio 0.0000, p99 ≤ 50 ms"
        );
        // 2 errors in 4 requests: over 5 %, rolled back although no minimum is asked.
        let mut sim = serving_v1_with(NO_MINIMUM);
        sim.step(3, at(10), None);
        sim.ready(3, 1);
        sim.step(3, at(11), Some(timed(0.0, 0.0, 0.0)));
        let p = sim.step(3, at(21), Some(timed(4.0, 4.0, 2.0)));
        assert_eq!(sim.status.phase, Some(Phase::RolledBack));
        assert_eq!(p.replicas, BTreeMap::from([(1, 2)]));
        assert_eq!(
            sim.status.history[0].reason,
            "analysis of step 1: error ratio 0.5000 (2 of 4 requests) is over 0.05"
        );
        // 1 of 2 requests slower than 50 ms: the p99 is over the limit.
        let mut sim = serving_v1_with(NO_MINIMUM);
        sim.step(4, at(10), None);
        sim.ready(4, 1);
        sim.step(4, at(11), Some(timed(0.0, 0.0, 0.0)));
        sim.step(4, at(21), Some(timed(1.0, 2.0, 0.0)));
        assert_eq!(sim.status.phase, Some(Phase::RolledBack));
        assert_eq!(
            sim.status.history[0].reason,
            "analysis of step 1: p99 latency up to 100 ms is over 50 ms"
        );
    }

    #[test]
    fn a_rolled_back_version_selected_again_is_explained_by_its_own_rollback() {
        let mut sim = serving_v1();
        // Version 3 fails its analysis.
        sim.step(3, at(10), None);
        sim.ready(3, 1);
        sim.step(3, at(11), Some(traffic(0.0, 0.0)));
        sim.step(3, at(22), Some(traffic(50.0, 20.0)));
        // Version 4 crashes once.
        sim.step(4, at(30), None);
        sim.pods.insert(
            4,
            VersionPods {
                ready: 0,
                restarts: 1,
            },
        );
        sim.step(4, at(31), None);
        assert_eq!(sim.status.history[0].reason, "its pods restarted 1 time");
        // Version 4 goes away and version 3 is selected again: still not retried, and the
        // reason given is version 3's.
        let p = sim.step(3, at(40), None);
        assert_eq!(
            p.conditions[0].message,
            "version 3 was rolled back (analysis of step 1: error ratio 0.4000 (20 of 50 requests) is over 0.05); version 1 serves all traffic"
        );
    }

    #[test]
    fn status_messages_name_versions_never_rust_options() {
        let mut sim = serving_v1();
        sim.step(2, at(10), None);
        let p = sim.step(3, at(11), None);
        assert_eq!(
            sim.status.history[0].reason,
            "version 3 was selected instead"
        );
        let mut all = texts(&p, &sim.status);
        // The selected version disappears while it is the canary.
        let p = sim.select(None, at(12), None);
        assert_eq!(
            sim.status.history[0].reason,
            "no version is selected any more"
        );
        assert_eq!(sim.status.canary_version, None);
        all.extend(texts(&p, &sim.status));
        for text in &all {
            assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
        }
    }

    #[test]
    fn rolling_brings_the_new_version_up_fully_before_the_old_goes() {
        let mut sim = Sim::new("{type: Rolling}");
        sim.ready(1, 2);
        sim.step(1, at(0), None);
        let p = sim.step(2, at(5), None);
        assert_eq!(p.replicas, BTreeMap::from([(1, 2), (2, 2)]));
        sim.ready(2, 1);
        assert_eq!(sim.step(2, at(6), None).replicas.len(), 2);
        sim.ready(2, 2);
        let p = sim.step(2, at(7), None);
        assert_eq!(p.replicas, BTreeMap::from([(2, 2)]));
        assert_eq!(sim.status.serving_version, Some(2));
    }

    #[test]
    fn a_newer_selection_supersedes_the_canary_in_flight() {
        let mut sim = serving_v1();
        sim.step(2, at(10), None);
        sim.step(3, at(11), None);
        assert_eq!(sim.status.canary_version, Some(3));
        assert_eq!(sim.status.history[0].result, RolloutResult::Superseded);
    }

    #[test]
    fn canary_replicas_follow_the_weight_and_keep_at_least_one() {
        assert_eq!(canary_replicas(10, 10), 1);
        assert_eq!(canary_replicas(10, 25), 3);
        assert_eq!(canary_replicas(2, 50), 1);
        assert_eq!(canary_replicas(1, 10), 1);
        assert_eq!(canary_replicas(4, 100), 4);
    }
}

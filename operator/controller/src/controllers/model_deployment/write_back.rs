//! `spec.gitWriteBack`: promotions and rollbacks become commits. The ModelDeployment pins a
//! version, and ciclo never moves the pin in the cluster: it edits it in git (ciclo-gitops)
//! and the GitOps controller applies the commit, from which the canary runs as for any change
//! of the pin.
//!
//! What to write is decided from the cluster ([`plan`]); whether it was written already is
//! decided from git's history (the commits' trailers), so a restart between the push and
//! the status write pushes nothing twice.

use super::select;
use crate::context::Context;
use ciclo_api::conditions::Set;
use ciclo_api::model_deployment::{
    GitWriteBack, ModelDeployment, RolloutResult, WriteBackChange, WriteBackStatus,
};
use ciclo_api::model_version::ModelVersion;
use ciclo_gitops::{Change, Credentials, Outcome, Remote, Request};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource as _, ResourceExt as _};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The condition that says how write-back stands.
pub const CONDITION: &str = "GitWriteBack";
/// A change that failed (or needed no commit) is not tried again sooner: the reconciles of
/// a rollout come every few seconds, and each would fetch.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest one write-back (fetch, commit, push, and their retries) may take.
const TIMEOUT: Duration = Duration::from_secs(180);

/// What this reconcile should write back.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Nothing: git pins what should serve; the message says why.
    Nothing(String),
    /// Written already (`status.writeBack`); waiting for the GitOps controller to apply it.
    Waiting(WriteBackStatus),
    Write(Change),
}

/// Decides from the spec (what git pins, as applied), the status and the model's versions.
pub fn plan(md: &ModelDeployment, versions: &[ModelVersion]) -> Plan {
    let Some(pinned) = md.spec.model.version else {
        return Plan::Nothing("spec.model.version is not pinned".into());
    };
    let status = md.status.clone().unwrap_or_default();
    let written = status.write_back.clone();
    // The pinned version failed its analysis under this spec: pin the one serving on.
    if let Some(failed) = status.history.first().filter(|h| {
        h.version == pinned
            && h.result == RolloutResult::RolledBack
            && Some(h.generation) == md.metadata.generation
    }) && let Some(to) = failed.from
    {
        return match written {
            Some(w) if w.change == WriteBackChange::Rollback && w.version == to => Plan::Waiting(w),
            _ => Plan::Write(Change::RollBack { failed: pinned, to }),
        };
    }
    let promoted = written
        .as_ref()
        .filter(|w| w.change == WriteBackChange::Promotion)
        .map(|w| w.version);
    // Only versions newer than any rolled out here: one that failed its analysis, or was
    // served and then unpinned in git (a reverted promotion), is not promoted again; a person
    // may still pin it. (Git's history, which outlasts the status's, is checked too.)
    let rolled_out = status
        .history
        .iter()
        .filter(|h| {
            matches!(
                h.result,
                RolloutResult::Promoted | RolloutResult::RolledBack
            )
        })
        .map(|h| h.version)
        .max()
        .unwrap_or(0);
    let newest = versions
        .iter()
        .filter(|mv| mv.status.as_ref().is_some_and(|s| s.blessed))
        .filter(|mv| mv.spec.version > rolled_out)
        .max_by_key(|mv| mv.spec.version);
    let Some(newest) = newest.filter(|mv| mv.spec.version > pinned) else {
        return Plan::Nothing(if rolled_out > pinned {
            format!(
                "git pins version {pinned}; version {rolled_out} was rolled out here before (a reverted promotion or a failed canary is not made again): a blessed version newer than {rolled_out} will be"
            )
        } else {
            format!("git pins version {pinned}; no newer version is blessed")
        });
    };
    if let Some(w) = written
        .filter(|w| w.change == WriteBackChange::Promotion && promoted >= Some(newest.spec.version))
    {
        return Plan::Waiting(w);
    }
    let serving = status.serving_version.unwrap_or(pinned);
    if md.spec.require_improvement
        && let Some(current) = versions.iter().find(|mv| mv.spec.version == serving)
        && let Err(why) = select::improves(newest, current)
    {
        return Plan::Nothing(format!("git pins version {pinned}; {why}"));
    }
    Plan::Write(Change::Promote {
        from: pinned,
        to: newest.spec.version,
    })
}

/// The last attempt per ModelDeployment (by uid) that pushed nothing: its change, when, and
/// the condition it left.
#[derive(Default)]
pub struct Attempts(Mutex<HashMap<String, (Change, Instant, Set)>>);

/// Runs the plan: the condition to show, and the status to record when a commit exists.
pub async fn run(
    ctx: &Context,
    attempts: &Attempts,
    md: &ModelDeployment,
    spec: &GitWriteBack,
    versions: &[ModelVersion],
) -> (Set, Option<WriteBackStatus>) {
    let change = match plan(md, versions) {
        Plan::Nothing(why) => return (Set::new(CONDITION, true, "UpToDate", why), None),
        Plan::Waiting(w) => {
            let message = format!(
                "commit {} on {} pins version {}, the spec version {}: the GitOps controller has not applied it yet, or it was reverted (a reverted promotion is not made again)",
                w.commit,
                w.branch,
                w.version,
                md.spec.model.version.unwrap_or_default()
            );
            return (Set::new(CONDITION, true, "Committed", message), None);
        }
        Plan::Write(change) => change,
    };
    let uid = md.uid().unwrap_or_default();
    if let Some((_, _, shown)) = attempts
        .0
        .lock()
        .expect("attempts lock")
        .get(&uid)
        .filter(|(c, at, _)| *c == change && at.elapsed() < RETRY_AFTER)
    {
        return (shown.clone(), None);
    }
    let result = write(ctx, md, spec, versions, change).await;
    let (condition, written) = match result {
        Ok(Outcome::Committed { commit, branch }) | Ok(Outcome::Found { commit, branch }) => {
            let recorded = WriteBackStatus {
                change: match change {
                    Change::Promote { .. } => WriteBackChange::Promotion,
                    Change::RollBack { .. } => WriteBackChange::Rollback,
                },
                version: change.pins(),
                commit: commit.clone(),
                branch: branch.clone(),
                time: jiff::Timestamp::now(),
            };
            let message = format!(
                "commit {commit} on {branch} pins version {}; waiting for the GitOps controller to apply it",
                change.pins()
            );
            (
                Set::new(CONDITION, true, "Committed", message),
                Some(recorded),
            )
        }
        Ok(Outcome::Unneeded { why }) => (Set::new(CONDITION, true, "UpToDate", why), None),
        Err((reason, message)) => (Set::new(CONDITION, false, reason, message), None),
    };
    if written.is_none() {
        attempts
            .0
            .lock()
            .expect("attempts lock")
            .insert(uid, (change, Instant::now(), condition.clone()));
    }
    (condition, written)
}

/// Reads the credentials and writes `change` back; a failure is `(reason, message)`, also
/// announced as a Warning Event.
async fn write(
    ctx: &Context,
    md: &ModelDeployment,
    spec: &GitWriteBack,
    versions: &[ModelVersion],
    change: Change,
) -> Result<Outcome, (&'static str, String)> {
    let ns = md.namespace().unwrap_or_default();
    let failed = |reason: &'static str, message: String| (reason, message);
    let result = async {
        let credentials = match &spec.secret_ref {
            Some(r) => Some(credentials(ctx, &ns, &r.name).await?),
            None => None,
        };
        let remote = Remote {
            url: spec.url.clone(),
            branch: spec.branch.clone(),
            credentials,
        };
        let involved = fresh(ctx, &ns, versions, change).await;
        let request = request(md, spec, &involved, change);
        let cache = cache_dir();
        let task = tokio::task::spawn_blocking(move || {
            ciclo_gitops::write_back(&cache, &remote, &request)
        });
        match tokio::time::timeout(TIMEOUT, task).await {
            Err(_) => Err(failed(
                "GitTimeout",
                format!("{}: no answer within {TIMEOUT:?}", spec.url),
            )),
            Ok(Err(e)) => Err(failed(
                "GitError",
                format!("the write-back task failed: {e}"),
            )),
            Ok(Ok(Err(e))) => Err(failed(reason(&e), e.to_string())),
            Ok(Ok(Ok(outcome))) => Ok(outcome),
        }
    }
    .await;
    let object = md.object_ref(&());
    match &result {
        Ok(Outcome::Committed { commit, branch }) => {
            let (reason, what) = match change {
                Change::Promote { to, .. } => ("PromotionCommitted", format!("pins version {to}")),
                Change::RollBack { failed, to } => (
                    "RollbackCommitted",
                    format!("pins version {to} again (version {failed} failed its analysis)"),
                ),
            };
            tracing::info!(deployment = %md.name_any(), namespace = %ns, %commit, %branch, "written back to git");
            ctx.publish(
                &object,
                EventType::Normal,
                reason,
                &format!("commit {commit} on {branch} of {} {what}", spec.url),
                "WriteBack",
            )
            .await;
        }
        Ok(_) => {}
        Err((reason, message)) => {
            tracing::warn!(deployment = %md.name_any(), namespace = %ns, reason, error = %message, "write-back failed");
            ctx.publish(&object, EventType::Warning, reason, message, "WriteBack")
                .await;
        }
    }
    result
}

/// The versions `change` names, read fresh: the cache keeps no params, image or code of a
/// version's lineage, and the commit message tells them. A version that cannot be read is
/// told from the cache.
async fn fresh(
    ctx: &Context,
    ns: &str,
    versions: &[ModelVersion],
    change: Change,
) -> Vec<ModelVersion> {
    let wanted = match change {
        Change::Promote { from, to } => [from, to],
        Change::RollBack { failed, to } => [failed, to],
    };
    let api = Api::<ModelVersion>::namespaced(ctx.client.clone(), ns);
    let mut out = Vec::new();
    for mv in versions
        .iter()
        .filter(|mv| wanted.contains(&mv.spec.version))
    {
        match api.get_opt(&mv.name_any()).await {
            Ok(Some(full)) => out.push(full),
            _ => out.push(mv.clone()),
        }
    }
    out
}

/// `username` and `password` of Secret `name`: read here, handed to libgit2's credential
/// callback, never logged or put in a status or Event.
async fn credentials(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Credentials, (&'static str, String)> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ("SecretUnreadable", format!("Secret {name}: {e}")))?
        .ok_or_else(|| {
            (
                "SecretNotFound",
                format!("spec.gitWriteBack.secretRef: no Secret {name:?} in namespace {ns}"),
            )
        })?;
    let data = secret.data.unwrap_or_default();
    let key = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .ok_or_else(|| {
                (
                    "SecretNotFound",
                    format!(
                        "spec.gitWriteBack.secretRef: Secret {name:?} has no key {k:?} (it needs username and password)"
                    ),
                )
            })
    };
    Ok(Credentials {
        username: key("username")?,
        password: key("password")?,
    })
}

/// The condition's reason for a write-back error.
fn reason(e: &ciclo_gitops::Error) -> &'static str {
    use ciclo_gitops::Error::*;
    match e {
        Unauthorized { .. } => "Unauthorized",
        NoBranch { .. } => "BranchNotFound",
        NoFile { .. } => "FileNotFound",
        Pin { .. } => "PinNotFound",
        Refused { .. } | Contended { .. } => "PushRefused",
        Git { .. } | Cache { .. } => "GitError",
    }
}

/// Where the local copies of repositories are kept: `CICLO_GIT_CACHE`, else the temporary
/// directory (an emptyDir in the operator's pod).
fn cache_dir() -> PathBuf {
    std::env::var_os("CICLO_GIT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ciclo-git"))
}

/// The commit's names and message: the version's lineage, so `git log` tells what was
/// promoted from what.
fn request(
    md: &ModelDeployment,
    spec: &GitWriteBack,
    versions: &[ModelVersion],
    change: Change,
) -> Request {
    let ns = md.namespace().unwrap_or_default();
    let name = md.name_any();
    let model = &md.spec.model.name;
    let find = |v: i64| versions.iter().find(|mv| mv.spec.version == v);
    let (subject, body) = match change {
        Change::Promote { from, to } => (
            format!("Promote {model} to version {to} ({ns}/{name})"),
            promotion_body(find(to), find(from), from),
        ),
        Change::RollBack { failed, to } => {
            let why = md
                .status
                .as_ref()
                .and_then(|s| s.history.first())
                .map(|h| h.reason.clone())
                .unwrap_or_default();
            (
                format!("Roll back {model} to version {to} ({ns}/{name})"),
                format!(
                    "Version {failed} failed its canary analysis and was rolled back; version {to} serves on.\n{why}"
                ),
            )
        }
    };
    Request {
        deployment: format!("{ns}/{name}"),
        kind: "ModelDeployment".into(),
        name: name.clone(),
        path: spec.path.clone(),
        change,
        subject,
        body,
        review_branch: spec
            .review_branch_prefix
            .as_ref()
            .map(|p| format!("{p}{name}-v{}", change.pins())),
        author_name: "ciclo".into(),
        author_email: "ciclo@ciclo.dev".into(),
    }
}

/// Lineage of the promoted version, beside the metrics of the one it replaces.
fn promotion_body(to: Option<&ModelVersion>, from: Option<&ModelVersion>, from_n: i64) -> String {
    let Some(mv) = to else {
        return String::new();
    };
    let l = &mv.spec.lineage;
    let mut lines = vec![format!(
        "Trained by TrainingRun {} (run {}) on dataset {} version {}.",
        l.training_run, l.run_id, l.dataset.name, l.dataset.version
    )];
    if let Some(revision) = &l.git_revision {
        lines.push(format!(
            "Code: {} {revision}",
            l.git_repository
                .as_deref()
                .unwrap_or("(repository not recorded)")
        ));
    }
    if !l.image.is_empty() {
        lines.push(format!(
            "Image: {}{}",
            l.image,
            l.image_digest
                .as_deref()
                .map(|d| format!("@{d}"))
                .unwrap_or_default()
        ));
    }
    if !l.params.is_empty() {
        let params: Vec<String> = l.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(format!("Params: {}", params.join(", ")));
    }
    if !l.metrics.is_empty() {
        let old = from.map(|f| &f.spec.lineage.metrics);
        let metrics: Vec<String> = l
            .metrics
            .iter()
            .map(|(k, v)| match old.and_then(|o| o.get(k)) {
                Some(before) => format!("{k}={v} (version {from_n}: {before})"),
                None => format!("{k}={v}"),
            })
            .collect();
        lines.push(format!("Metrics: {}", metrics.join(", ")));
    }
    lines.push(format!(
        "Artifact: {} ({})",
        mv.spec.artifact.uri, mv.spec.artifact.digest
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(extra_status: &str) -> ModelDeployment {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: web, namespace: ml, generation: 4, uid: u1}}
spec:
  model: {{name: iris, version: 2}}
  gitWriteBack: {{url: "http://git/team.git", path: web.yaml}}
status: {{servingVersion: 2{extra_status}}}
"#
        ))
        .unwrap()
    }

    fn mv(version: i64, blessed: bool, accuracy: f64) -> ModelVersion {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata:
  name: iris-v{version}
  namespace: ml
  annotations:
    ciclo.dev/gates: '{{"gates":[],"metrics":[{{"name":"accuracy","direction":"Maximize"}}],"primaryMetric":"accuracy"}}'
spec:
  model: iris
  version: {version}
  artifact: {{uri: "s3://m/iris/{version}", digest: "blake3:00"}}
  lineage: {{trainingRun: iris, runId: r{version}, dataset: {{name: iris, version: d}}, image: ciclo, metrics: {{accuracy: {accuracy}}}}}
status: {{blessed: {blessed}}}
"#
        ))
        .unwrap()
    }

    #[test]
    fn the_newest_blessed_version_above_the_pin_is_promoted() {
        let versions = [
            mv(2, true, 0.8),
            mv(3, true, 0.85),
            mv(4, true, 0.9),
            mv(5, false, 0.99),
        ];
        assert_eq!(
            plan(&md(""), &versions),
            Plan::Write(Change::Promote { from: 2, to: 4 })
        );
        assert!(matches!(
            plan(&md(""), &versions[..1]),
            Plan::Nothing(why) if why.contains("no newer version is blessed")
        ));
    }

    #[test]
    fn a_version_that_does_not_beat_the_serving_one_is_not_promoted() {
        let versions = [mv(2, true, 0.9), mv(3, true, 0.8)];
        assert!(matches!(
            plan(&md(""), &versions),
            Plan::Nothing(why) if why.contains("does not beat the serving version 2")
        ));
    }

    #[test]
    fn a_written_promotion_waits_for_the_gitops_controller_until_a_newer_one_comes() {
        let written = ", writeBack: {change: Promotion, version: 3, commit: c1, branch: main, time: '2026-01-01T00:00:00Z'}";
        let versions = vec![mv(2, true, 0.8), mv(3, true, 0.85)];
        assert!(matches!(plan(&md(written), &versions), Plan::Waiting(w) if w.commit == "c1"));
        let mut more = versions;
        more.push(mv(4, true, 0.9));
        assert_eq!(
            plan(&md(written), &more),
            Plan::Write(Change::Promote { from: 2, to: 4 })
        );
    }

    #[test]
    fn a_pinned_version_rolled_back_under_this_spec_is_unpinned_in_git() {
        let history = |generation: i64| {
            format!(
                ", history: [{{version: 2, from: 1, result: RolledBack, reason: errors, generation: {generation}, finished: '2026-01-01T00:00:00Z'}}]"
            )
        };
        let versions = [mv(1, true, 0.8), mv(2, true, 0.9)];
        assert_eq!(
            plan(&md(&history(4)), &versions),
            Plan::Write(Change::RollBack { failed: 2, to: 1 })
        );
        // Rolled back under an earlier spec: the current pin is a new decision of git's, and
        // the failed version is not promoted again.
        assert!(matches!(
            plan(&md(&history(3)), &versions),
            Plan::Nothing(_)
        ));
        let mut pinned_back = md(&history(3));
        pinned_back.spec.model.version = Some(1);
        assert!(matches!(plan(&pinned_back, &versions), Plan::Nothing(_)));
        let newer = [mv(1, true, 0.8), mv(2, true, 0.9), mv(3, true, 0.95)];
        assert_eq!(
            plan(&pinned_back, &newer),
            Plan::Write(Change::Promote { from: 1, to: 3 })
        );
    }

    #[test]
    fn the_commit_message_carries_the_lineage() {
        let versions = [mv(2, true, 0.8), mv(3, true, 0.9)];
        let m = md("");
        let spec = m.spec.git_write_back.clone().unwrap();
        let r = request(&m, &spec, &versions, Change::Promote { from: 2, to: 3 });
        assert_eq!(r.subject, "Promote iris to version 3 (ml/web)");
        assert!(
            r.body
                .contains("Trained by TrainingRun iris (run r3) on dataset iris version d."),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("Metrics: accuracy=0.9 (version 2: 0.8)"),
            "{}",
            r.body
        );
        assert_eq!(r.review_branch, None);
        let mut reviewed = spec;
        reviewed.review_branch_prefix = Some("ciclo/".into());
        let r = request(&m, &reviewed, &versions, Change::Promote { from: 2, to: 3 });
        assert_eq!(r.review_branch.as_deref(), Some("ciclo/web-v3"));
    }
}

//! The Dataset controller: resolve the credentials Secret → validate the spec → status.
//! Taking snapshots (the work itself) comes with the dataset capability.

use super::{controller, run_until};
use crate::context::Context;
use crate::error::Result;
use crate::status;
use ciclo_api::conditions::{self, Set};
use ciclo_api::dataset::Dataset;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::Action;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const KIND: &str = "Dataset";
/// A missing Secret is not watched (the operator may only `get` Secrets), so look again.
const SECRET_RECHECK: Duration = Duration::from_secs(30);

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    let controller = controller::<Dataset>(&ctx);
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

async fn reconcile(ctx: Arc<Context>, ds: Dataset) -> Result<Action> {
    let ns = ds.namespace().unwrap_or_default();
    // Resolve: the credentials Secret, when one is named.
    let secret_found = match &ds.spec.source.credentials_secret_ref {
        Some(r) => Some(
            Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get_metadata_opt(&r.name)
                .await?
                .is_some(),
        ),
        None => None,
    };
    let decision = decide(&ds, secret_found);
    status::update(&ctx, &ds, ds.status.as_ref(), &decision.conditions, |_| {}).await?;
    Ok(decision.action)
}

/// The outcome of the pure steps.
#[derive(Debug)]
pub struct Decision {
    pub conditions: Vec<Set>,
    pub action: Action,
}

/// Validates `ds` given whether its credentials Secret exists (`None`: none is named).
pub fn decide(ds: &Dataset, secret_found: Option<bool>) -> Decision {
    let stalled = |reason: &str, message: String, action: Action| Decision {
        conditions: conditions::stalled(reason, message),
        action,
    };
    if let Err(why) = parse_interval(&ds.spec.interval) {
        return stalled(
            "InvalidInterval",
            format!("spec.interval: {why}"),
            Action::await_change(),
        );
    }
    if secret_found == Some(false) {
        let name = ds
            .spec
            .source
            .credentials_secret_ref
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or_default();
        return stalled(
            "SecretNotFound",
            format!(
                "spec.source.credentialsSecretRef: Secret {name:?} not found in namespace {:?}",
                ds.namespace().unwrap_or_default()
            ),
            Action::requeue(SECRET_RECHECK),
        );
    }
    if ds.spec.suspend {
        return Decision {
            conditions: conditions::idle(
                "Suspended",
                "checks for new data are suspended (spec.suspend)",
            ),
            action: Action::await_change(),
        };
    }
    let conditions = match ds.status.as_ref().and_then(|s| s.latest.as_ref()) {
        Some(latest) => conditions::ready(
            "VersionAccepted",
            format!(
                "latest accepted version {} ({} rows)",
                latest.id, latest.rows
            ),
        ),
        None => conditions::reconciling(
            "AwaitingFirstVersion",
            "no version of the data has been accepted yet",
        ),
    };
    Decision {
        conditions,
        action: Action::await_change(),
    }
}

/// A Go-style duration ("90s", "30m", "1h30m") that must be positive.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration such as 30m or 1h ({e})"))?;
    if d.is_zero() || d.is_negative() {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(d.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::has_condition;
    use ciclo_api::conditions::{READY, RECONCILING, STALLED, merge};

    fn dataset(yaml: &str) -> Dataset {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn conditions(d: &Decision) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        merge(&[], &d.conditions, Some(1), jiff::Timestamp::UNIX_EPOCH)
    }

    const BASE: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: iris, namespace: ml}
spec:
  source: {uri: "s3://data/iris/", credentialsSecretRef: {name: store}}
  interval: 1h
"#;

    #[test]
    fn a_missing_credentials_secret_stalls_naming_the_field() {
        let d = decide(&dataset(BASE), Some(false));
        let c = conditions(&d);
        assert!(has_condition(&c, STALLED, "SecretNotFound"), "{c:?}");
        assert!(
            c[0].message.contains("spec.source.credentialsSecretRef")
                || c[1].message.contains("spec.source.credentialsSecretRef")
        );
    }

    #[test]
    fn a_valid_dataset_without_versions_is_reconciling_not_stalled() {
        let c = conditions(&decide(&dataset(BASE), Some(true)));
        assert!(
            has_condition(&c, RECONCILING, "AwaitingFirstVersion"),
            "{c:?}"
        );
        assert!(!c.iter().any(|c| c.type_ == STALLED));
        assert!(c.iter().any(|c| c.type_ == READY && c.status == "False"));
    }

    #[test]
    fn a_dataset_with_an_accepted_version_is_ready() {
        let mut ds = dataset(BASE);
        ds.status = serde_yaml::from_str(
            "latest: {id: abc, created: '2026-01-01T00:00:00Z', rows: 10, bytes: 100, files: 1, verdict: Accepted}",
        )
        .unwrap();
        let c = conditions(&decide(&ds, Some(true)));
        assert!(
            c.iter()
                .any(|c| c.type_ == READY && c.status == "True" && c.message.contains("abc")),
            "{c:?}"
        );
    }

    #[test]
    fn intervals_parse_like_go_durations_and_must_be_positive() {
        assert_eq!(parse_interval("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_interval("0s").unwrap_err().contains("positive"));
        assert!(parse_interval("soon").is_err());
    }
}

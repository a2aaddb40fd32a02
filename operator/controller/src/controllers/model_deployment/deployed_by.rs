//! `ModelVersion.status.deployedBy`: the ModelDeployments serving each version (as stable or
//! canary), so a model registry view shows where every version runs.

use crate::context::Context;
use crate::error::Result;
use ciclo_api::model_version::ModelVersion;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The `deployedBy` list `mv` should have when `md` serves `serving` (a set of versions).
pub fn wanted(mv: &ModelVersion, md: &str, serving: &[i64]) -> Vec<String> {
    let mut list: Vec<String> = mv
        .status
        .as_ref()
        .map(|s| s.deployed_by.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d != md)
        .collect();
    if serving.contains(&mv.spec.version) {
        list.push(md.to_string());
        list.sort();
    }
    list
}

/// Brings every version of the model up to date. A merge patch of that one field, guarded by
/// the resourceVersion read (another ModelDeployment may edit the same list): a conflict
/// fails the reconcile, which retries with fresh objects.
pub async fn sync(
    ctx: &Context,
    ns: &str,
    md: &str,
    versions: &[ModelVersion],
    serving: &[i64],
) -> Result<()> {
    let api: Api<ModelVersion> = Api::namespaced(ctx.client.clone(), ns);
    for mv in versions {
        let list = wanted(mv, md, serving);
        let current = mv.status.as_ref().map(|s| &s.deployed_by);
        if current.map_or(list.is_empty(), |c| *c == list) {
            continue;
        }
        let patch = json!({
            "metadata": {"resourceVersion": mv.resource_version()},
            "status": {"deployedBy": list},
        });
        api.patch_status(
            &mv.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(version: i64, deployed_by: &str) -> ModelVersion {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {{name: iris-{version}}}
spec:
  model: iris
  version: {version}
  artifact: {{uri: "s3://a/m", digest: "blake3:00"}}
  lineage: {{trainingRun: tr, runId: r, dataset: {{name: d, version: v}}, image: i}}
status: {{deployedBy: {deployed_by}}}
"#
        ))
        .unwrap()
    }

    #[test]
    fn a_version_lists_the_deployments_serving_it_and_no_others() {
        assert_eq!(wanted(&mv(2, "[]"), "web", &[1, 2]), vec!["web"]);
        assert_eq!(wanted(&mv(2, "[batch]"), "web", &[2]), vec!["batch", "web"]);
        assert_eq!(
            wanted(&mv(1, "[batch, web]"), "web", &[2]),
            vec!["batch"],
            "no longer served by web"
        );
    }
}

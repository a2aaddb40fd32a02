//! `spec.trafficRouting.httpRoute`: exact canary weights through a Gateway API HTTPRoute
//! instead of replica ratio. ciclo owns two Services, `<md>-stable` (the serving version's
//! pods) and `<md>-canary` (the canary's, or the serving version's between rollouts), and sets
//! the weights of the route's backendRefs that name them; the rest of the route is the user's.

use crate::context::Context;
use crate::error::{Error, Result};
use ciclo_api::labels;
use ciclo_api::model_deployment::ModelDeployment;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Resource as _, ResourceExt as _};
use serde_json::Value;
use std::collections::BTreeMap;

/// The Service a route's stable (`canary = false`) or canary backendRef names.
pub fn service_name(md: &ModelDeployment, canary: bool) -> String {
    format!(
        "{}-{}",
        md.name_any(),
        if canary { "canary" } else { "stable" }
    )
}

/// `<md>-stable` over version `stable`'s pods, `<md>-canary` over `canary`'s (or `stable`'s).
pub fn services(md: &ModelDeployment, stable: i64, canary: Option<i64>) -> [Service; 2] {
    let service = |is_canary: bool, version: i64| Service {
        metadata: ObjectMeta {
            name: Some(service_name(md, is_canary)),
            namespace: md.namespace(),
            labels: Some(BTreeMap::from([
                (labels::DEPLOYMENT.into(), md.name_any()),
                ("app.kubernetes.io/managed-by".into(), "ciclo".into()),
            ])),
            owner_references: md.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([
                (labels::DEPLOYMENT.into(), md.name_any()),
                (labels::VERSION.into(), version.to_string()),
            ])),
            ports: Some(super::children::service_ports(md)),
            ..Default::default()
        }),
        ..Default::default()
    };
    [
        service(false, stable),
        service(true, canary.unwrap_or(stable)),
    ]
}

/// Sets the weights of `route`'s backendRefs naming the two Services (`canary_weight` percent
/// to the canary); returns whether anything changed, or an error if no rule names both.
pub fn set_weights(
    route: &mut Value,
    md: &ModelDeployment,
    canary_weight: i32,
) -> Result<bool, String> {
    let (stable, canary) = (service_name(md, false), service_name(md, true));
    let mut changed = false;
    let mut found = (false, false);
    let rules = route["spec"]["rules"].as_array_mut().into_iter().flatten();
    for backend in rules.flat_map(|r| r["backendRefs"].as_array_mut().into_iter().flatten()) {
        let weight = match backend["name"].as_str() {
            Some(n) if n == stable => {
                found.0 = true;
                100 - canary_weight
            }
            Some(n) if n == canary => {
                found.1 = true;
                canary_weight
            }
            _ => continue,
        };
        if backend["weight"] != weight {
            backend["weight"] = weight.into();
            changed = true;
        }
    }
    match found {
        (true, true) => Ok(changed),
        _ => Err(format!(
            "spec.trafficRouting.httpRoute: the HTTPRoute has no rule with backendRefs to both {stable} and {canary}"
        )),
    }
}

/// Brings the HTTPRoute's weights to `canary_weight`; `Err` (for a condition) when the route
/// or its backendRefs are missing.
pub async fn apply_weights(
    ctx: &Context,
    md: &ModelDeployment,
    route: &str,
    canary_weight: i32,
) -> Result<std::result::Result<(), String>> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &md.namespace().unwrap_or_default(),
        &ApiResource::from_gvk(&gvk),
    );
    let Some(object) = api.get_opt(route).await? else {
        return Ok(Err(format!(
            "spec.trafficRouting.httpRoute: HTTPRoute {route:?} not found in this namespace"
        )));
    };
    let mut value = serde_json::to_value(&object)?;
    match set_weights(&mut value, md, canary_weight) {
        Ok(false) => Ok(Ok(())),
        Ok(true) => {
            // A replace guarded by the resourceVersion read: an edit in between fails the
            // reconcile, which retries on the fresh route.
            let updated: DynamicObject = serde_json::from_value(value)?;
            match api.replace(route, &PostParams::default(), &updated).await {
                Ok(_) => Ok(Ok(())),
                Err(e) => refused(route, e.into()),
            }
        }
        Err(why) => Ok(Err(why)),
    }
}

/// A refusal of the route's new weights: one that cannot pass by retrying (the route as it
/// is, or an admission policy, forbids them) is a problem for the condition, in the API
/// server's words; any other is retried.
fn refused(route: &str, e: Error) -> Result<std::result::Result<(), String>> {
    match e.invalid_object() {
        Some(message) => Ok(Err(format!(
            "spec.trafficRouting.httpRoute: the API server refused new weights for HTTPRoute {route:?}: {message}"
        ))),
        None => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn md() -> ModelDeployment {
        serde_yaml::from_str(
            "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: web, namespace: ml, uid: u1}\nspec: {model: {name: iris}, trafficRouting: {httpRoute: web}}",
        )
        .unwrap()
    }

    fn route() -> Value {
        json!({"spec": {"rules": [
            {"matches": [{"path": {"value": "/other"}}], "backendRefs": [{"name": "other", "port": 80}]},
            {"backendRefs": [
                {"name": "web-stable", "port": 8080, "weight": 100},
                {"name": "web-canary", "port": 8080, "weight": 0}
            ]}
        ]}})
    }

    #[test]
    fn the_weights_of_the_two_backends_follow_the_canary_and_nothing_else_changes() {
        let mut r = route();
        assert_eq!(set_weights(&mut r, &md(), 0), Ok(false), "already so");
        assert_eq!(set_weights(&mut r, &md(), 25), Ok(true));
        let backends = &r["spec"]["rules"][1]["backendRefs"];
        assert_eq!(
            (&backends[0]["weight"], &backends[1]["weight"]),
            (&json!(75), &json!(25))
        );
        assert_eq!(
            r["spec"]["rules"][0],
            route()["spec"]["rules"][0],
            "the user's rule is untouched"
        );
    }

    #[test]
    fn a_route_without_both_backends_is_refused_with_the_field() {
        let mut r = json!({"spec": {"rules": [{"backendRefs": [{"name": "web-stable"}]}]}});
        let err = set_weights(&mut r, &md(), 10).unwrap_err();
        assert!(err.starts_with("spec.trafficRouting.httpRoute"), "{err}");
    }

    #[test]
    fn a_refused_update_is_a_problem_to_show_and_other_failures_are_retried() {
        let failure = |code, reason| {
            Error::Kube(kube::Error::Api(Box::new(
                kube::core::Status::failure("denied: routes are frozen", reason).with_code(code),
            )))
        };
        let shown = refused("web", failure(422, "Invalid"))
            .unwrap()
            .unwrap_err();
        assert!(
            shown.starts_with("spec.trafficRouting.httpRoute: ")
                && shown.ends_with("denied: routes are frozen"),
            "{shown}"
        );
        assert!(refused("web", failure(409, "Conflict")).is_err(), "retried");
        assert!(refused("web", failure(503, "ServiceUnavailable")).is_err());
    }

    #[test]
    fn the_services_select_the_stable_and_the_canary_version() {
        let [stable, canary] = services(&md(), 2, Some(3));
        let selects = |s: &Service| {
            s.spec.as_ref().unwrap().selector.as_ref().unwrap()[labels::VERSION].clone()
        };
        assert_eq!(
            (stable.metadata.name.as_deref(), selects(&stable)),
            (Some("web-stable"), "2".to_string())
        );
        assert_eq!(
            (canary.metadata.name.as_deref(), selects(&canary)),
            (Some("web-canary"), "3".to_string())
        );
        let [_, idle] = services(&md(), 2, None);
        assert_eq!(
            selects(&idle),
            "2",
            "between rollouts the canary Service has the stable pods"
        );
    }
}

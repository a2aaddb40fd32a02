//! Writing a resource's status (server-side apply, field manager `ciclo-operator`) and
//! announcing every condition transition as an Event.

use crate::context::Context;
use crate::error::Result;
use ciclo_api::conditions::{self, Kstatus, READY, STALLED, Set};
use ciclo_api::labels::FIELD_MANAGER;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::json;

/// A namespaced ciclo object whose status is written here.
pub trait Owner:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Owner for K where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// Sets `obj`'s conditions to `wanted` (and whatever `edit` changes) and applies the status
/// unless it is what the object already has; an Event records a Ready or Stalled change
/// before the status does.
pub async fn update<K, S>(
    ctx: &Context,
    obj: &K,
    status: Option<&S>,
    wanted: &[Set],
    edit: impl FnOnce(&mut S),
) -> Result<()>
where
    K: Owner,
    S: Kstatus,
{
    update_announcing(ctx, obj, status, wanted, true, edit).await
}

/// [`update`], announcing a Ready or Stalled change only if `announce`: for a change an
/// Event of the caller's already told (a TrainingRun's run that just ended).
pub async fn update_announcing<K, S>(
    ctx: &Context,
    obj: &K,
    status: Option<&S>,
    wanted: &[Set],
    announce: bool,
    edit: impl FnOnce(&mut S),
) -> Result<()>
where
    K: Owner,
    S: Kstatus,
{
    let current = status.cloned().unwrap_or_default();
    let mut next = current.clone();
    edit(&mut next);
    let generation = obj.meta().generation;
    next.set_conditions(
        conditions::merge(current.conditions(), wanted, generation, Timestamp::now()),
        generation,
    );
    ctx.metrics.condition_seen(
        crate::metrics::ObjectLabels {
            namespace: obj.namespace().unwrap_or_default(),
            kind: K::kind(&()).into_owned(),
            name: obj.name_any(),
        },
        conditions::find(next.conditions(), STALLED)
            .filter(|c| c.status == "True")
            .map(|c| c.reason.as_str()),
    );
    let new_value = serde_json::to_value(&next)?;
    if status.map(serde_json::to_value).transpose()?.as_ref() == Some(&new_value) {
        return Ok(());
    }
    // The Event goes first: if the process dies between the two, the status is still the old
    // one, so the next leader sees the same transition and records it again (a second Event,
    // only after a crash). The other order could lose the Event for good.
    if announce {
        self::announce(ctx, obj, current.conditions(), next.conditions()).await;
    }
    let (kind, ns, name) = (
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
    );
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": kind,
        "status": new_value,
    });
    ctx.own_writes
        .write(
            (&kind, &ns, &name),
            api.patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            ),
        )
        .await?;
    Ok(())
}

/// An Event for a Ready or Stalled transition.
async fn announce<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) {
    let Some((type_, shown)) = transition_event(old, new) else {
        return;
    };
    ctx.publish(
        &obj.object_ref(&()),
        type_,
        &shown.reason,
        &shown.message,
        "Reconcile",
    )
    .await;
}

/// The Event a change from `old` to `new` calls for, if Ready or Stalled changed: Warning
/// while stalled, or while not ready because of a kind-specific problem that holds (a
/// Dataset's `SourceUnavailable`, though ciclo keeps retrying); Normal otherwise.
fn transition_event<'a>(
    old: &[Condition],
    new: &'a [Condition],
) -> Option<(EventType, &'a Condition)> {
    let key = |cs: &[Condition]| {
        let ready = conditions::find(cs, READY).map(|c| (c.status.clone(), c.reason.clone()));
        let stalled = conditions::find(cs, STALLED).map(|c| c.reason.clone());
        (ready, stalled)
    };
    if key(old) == key(new) {
        return None;
    }
    if let Some(stalled) = conditions::find(new, STALLED) {
        return Some((EventType::Warning, stalled));
    }
    let ready = conditions::find(new, READY)?;
    let problem =
        ready.status == "False" && ready.reason != READY && conditions::is_true(new, &ready.reason);
    Some((
        if problem {
            EventType::Warning
        } else {
            EventType::Normal
        },
        ready,
    ))
}

/// Stops exporting `kind` `name` in `ns` as Stalled, and waiting for its writes: it is gone.
pub fn forget(ctx: &Context, kind: &str, ns: &str, name: &str) {
    ctx.own_writes.forget(kind, ns, name);
    ctx.metrics.condition_seen(
        crate::metrics::ObjectLabels {
            namespace: ns.into(),
            kind: kind.into(),
            name: name.into(),
        },
        None,
    );
}

/// Whether `conds` has `type_` true with `reason`.
#[cfg(test)]
pub fn has_condition(conds: &[Condition], type_: &str, reason: &str) -> bool {
    conds
        .iter()
        .any(|c| c.type_ == type_ && c.reason == reason && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciclo_api::conditions::{merge, ready, reconciling, stalled};

    fn conds(sets: Vec<Set>) -> Vec<Condition> {
        merge(&[], &sets, Some(1), Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn transitions_are_announced_once_with_the_right_type() {
        let checking = conds(reconciling("Checking", "checking"));
        let accepted = conds(ready("VersionAccepted", "v1"));
        let (t, c) = transition_event(&checking, &accepted).unwrap();
        assert_eq!(
            (t, c.reason.as_str()),
            (EventType::Normal, "VersionAccepted")
        );
        assert!(
            transition_event(&accepted, &accepted).is_none(),
            "no change, no Event"
        );
        let (t, _) = transition_event(&accepted, &conds(stalled("SecretNotFound", "m"))).unwrap();
        assert_eq!(t, EventType::Warning);
        // Not ready because a problem condition holds: a Warning, though it is retried.
        let mut unavailable = reconciling("SourceUnavailable", "refused");
        unavailable.push(Set::new(
            "SourceUnavailable",
            true,
            "SourceUnavailable",
            "refused",
        ));
        let unavailable = conds(unavailable);
        let (t, c) = transition_event(&accepted, &unavailable).unwrap();
        assert_eq!(
            (t, c.reason.as_str()),
            (EventType::Warning, "SourceUnavailable")
        );
    }
}

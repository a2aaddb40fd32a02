//! The restricted Pod Security Standard, as every Pod ciclo creates applies it: a namespace
//! labelled `pod-security.kubernetes.io/enforce=restricted` admits them all.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The user ciclo's own workloads run as (the conventional "nonroot" of distroless images).
pub const NONROOT: i64 = 65532;

/// Pod level: never root, the runtime's default seccomp profile.
pub fn pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NONROOT),
        run_as_group: Some(NONROOT),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container level: no privilege escalation, no capabilities, a read-only root.
pub fn container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Asserts `pod` meets the restricted Pod Security Standard as [`pod`] and [`container`] set
/// it, and has no API token: what every test of a Pod ciclo makes checks.
#[cfg(test)]
pub fn assert_restricted(pod: &k8s_openapi::api::core::v1::PodSpec) {
    let psc = pod
        .security_context
        .as_ref()
        .expect("a pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    for c in &pod.containers {
        let sc = c
            .security_context
            .as_ref()
            .expect("a container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.as_deref()),
            Some(&["ALL".to_string()][..]),
            "{}",
            c.name
        );
    }
    assert_eq!(pod.automount_service_account_token, Some(false));
}

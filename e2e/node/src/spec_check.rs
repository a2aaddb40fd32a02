//! What the process node cannot honour. A pod that asks for any of it is refused with
//! a reason naming the field, never run with the feature silently dropped.

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, Probe, Volume};

/// Every unsupported field of `pod`, as `path: why` lines.
pub fn unsupported(pod: &Pod) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(spec) = &pod.spec else {
        return vec!["spec: missing".into()];
    };
    let mut flag = |cond: bool, path: &str, why: &str| {
        if cond {
            problems.push(format!("{path}: {why}"));
        }
    };
    flag(
        spec.host_network == Some(true),
        "spec.hostNetwork",
        "pods get loopback addresses of their own",
    );
    flag(spec.host_pid == Some(true), "spec.hostPID", "not supported");
    flag(spec.host_ipc == Some(true), "spec.hostIPC", "not supported");
    flag(
        spec.ephemeral_containers
            .as_ref()
            .is_some_and(|c| !c.is_empty()),
        "spec.ephemeralContainers",
        "not supported",
    );
    flag(
        spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()),
        "spec.resourceClaims",
        "dynamic resource allocation is not supported",
    );
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(why) = unsupported_volume(v) {
            flag(true, &format!("spec.volumes[{i}] ({})", v.name), &why);
        }
    }
    let groups = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", &spec.containers),
    ];
    for (group, containers) in groups {
        for (i, c) in containers.iter().enumerate() {
            for why in unsupported_container(c, group == "initContainers") {
                flag(true, &format!("spec.{group}[{i}] ({})", c.name), &why);
            }
        }
    }
    problems
}

fn unsupported_volume(v: &Volume) -> Option<String> {
    if v.empty_dir.is_some() || v.config_map.is_some() || v.secret.is_some() {
        return None;
    }
    if let Some(d) = &v.downward_api {
        return d
            .items
            .iter()
            .flatten()
            .find(|i| i.resource_field_ref.is_some())
            .map(|_| "downwardAPI resourceFieldRef is not supported".to_string());
    }
    if let Some(p) = &v.projected {
        for s in p.sources.iter().flatten() {
            if s.cluster_trust_bundle.is_some() || s.pod_certificate.is_some() {
                return Some(
                    "projected clusterTrustBundle/podCertificate sources are not supported".into(),
                );
            }
            if s.downward_api.as_ref().is_some_and(|d| {
                d.items
                    .iter()
                    .flatten()
                    .any(|i| i.resource_field_ref.is_some())
            }) {
                return Some("downwardAPI resourceFieldRef is not supported".into());
            }
        }
        return None;
    }
    let json = serde_json::to_value(v).unwrap_or_default();
    let kind = json
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        .unwrap_or_else(|| "unknown".into());
    Some(format!(
        "volume type {kind:?} is not supported (emptyDir, configMap, secret, projected and downwardAPI are)"
    ))
}

fn unsupported_container(c: &Container, init: bool) -> Vec<String> {
    let mut out = Vec::new();
    if init && c.restart_policy.as_deref() == Some("Always") {
        out.push("sidecar init containers (restartPolicy: Always) are not supported".into());
    }
    if c.lifecycle.is_some() {
        out.push("lifecycle hooks (postStart/preStop) are not supported".into());
    }
    if c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()) {
        out.push("volumeDevices are not supported".into());
    }
    if c.ports
        .iter()
        .flatten()
        .any(|p| p.host_port.is_some_and(|h| h != 0))
    {
        out.push("hostPort is not supported: each pod has its own loopback address".into());
    }
    for m in c.volume_mounts.iter().flatten() {
        if m.mount_propagation.as_deref() == Some("Bidirectional") {
            out.push(format!(
                "volumeMounts {}: Bidirectional propagation is not supported",
                m.name
            ));
        }
        if m.sub_path_expr.is_some() {
            out.push(format!(
                "volumeMounts {}: subPathExpr is not supported",
                m.name
            ));
        }
    }
    for (kind, probe) in [
        ("readinessProbe", &c.readiness_probe),
        ("livenessProbe", &c.liveness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if probe.as_ref().is_some_and(|p: &Probe| p.grpc.is_some()) {
            out.push(format!("{kind}: grpc probes are not supported"));
        }
    }
    if c.env.iter().flatten().any(|e: &EnvVar| {
        e.value_from
            .as_ref()
            .is_some_and(|v| v.resource_field_ref.is_some() || v.file_key_ref.is_some())
    }) {
        out.push("env valueFrom resourceFieldRef/fileKeyRef is not supported".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn plain_pod_with_supported_volumes_is_accepted() {
        let p = pod(r#"
spec:
  containers:
  - name: c
    volumeMounts: [{name: a, mountPath: /a}]
  volumes:
  - {name: a, emptyDir: {}}
  - {name: b, secret: {secretName: s}}
  - name: c
    projected:
      sources: [{serviceAccountToken: {path: token}}]
"#);
        assert_eq!(unsupported(&p), Vec::<String>::new());
    }

    #[test]
    fn host_path_volume_is_refused_naming_the_volume_and_type() {
        let p = pod(r#"
spec:
  containers: [{name: c}]
  volumes: [{name: data, hostPath: {path: /etc}}]
"#);
        let problems = unsupported(&p);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("spec.volumes[0] (data):"),
            "{problems:?}"
        );
        assert!(problems[0].contains("\"hostPath\""), "{problems:?}");
    }

    #[test]
    fn sidecars_hooks_and_grpc_probes_are_refused() {
        let p = pod(r#"
spec:
  initContainers: [{name: side, restartPolicy: Always}]
  containers:
  - name: c
    lifecycle: {preStop: {exec: {command: [x]}}}
    readinessProbe: {grpc: {port: 1}}
"#);
        let problems = unsupported(&p).join("\n");
        assert!(
            problems.contains("spec.initContainers[0] (side): sidecar"),
            "{problems}"
        );
        assert!(
            problems.contains("spec.containers[0] (c): lifecycle"),
            "{problems}"
        );
        assert!(problems.contains("readinessProbe: grpc"), "{problems}");
    }
}

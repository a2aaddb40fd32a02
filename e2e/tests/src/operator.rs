//! The operator's replicas as the tests see them: which are ready, which leads, and how to
//! crash one.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

/// `(pod name, pod IP)` of the operator replicas.
pub async fn replicas(client: &kube::Client) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ciclo-system");
    crate::serving_pods(&pods, "app.kubernetes.io/name=ciclo-operator")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.status?.pod_ip?)))
        .collect()
}

/// The Lease holder's identity (`<pod name>_<suffix>`).
pub async fn holder(client: &kube::Client) -> String {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "ciclo-system");
    leases
        .get("ciclo-operator")
        .await
        .ok()
        .and_then(|l| l.spec?.holder_identity)
        .unwrap_or_default()
}

/// Sends SIGKILL to the operator process of `pod`: a crash, not a clean stop.
pub fn kill_process_of(pod: &str) {
    let needle = format!("POD_NAME={pod}");
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let has = |hay: &[u8], s: &str| hay.split(|b| *b == 0).any(|part| part == s.as_bytes());
        if has(&environ, &needle) && has(&cmdline, "operator") {
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "expected one operator process for {pod}");
}

/// Crashes the leading replica (SIGKILL); returns its pod name.
pub async fn kill_leader(client: &kube::Client) -> String {
    let lease_holder = holder(client).await;
    let (leader, _) = replicas(client)
        .await
        .into_iter()
        .find(|(name, _)| lease_holder.starts_with(&format!("{name}_")))
        .expect("a ready leader");
    kill_process_of(&leader);
    leader
}

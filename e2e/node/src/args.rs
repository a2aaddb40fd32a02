//! Command-line flags; every flag can also come from the environment.

use std::path::PathBuf;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "ciclo-node",
    version,
    about = "A Kubernetes node that runs pods as host processes"
)]
pub struct NodeArgs {
    /// Kubeconfig with the node's credentials (CN=system:node:<name>, O=system:nodes).
    #[arg(
        long,
        env = "CICLO_NODE_KUBECONFIG",
        default_value = ".cluster/node.kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// The Node's name.
    #[arg(long, env = "CICLO_NODE_NAME", default_value = "ciclo-node")]
    pub node_name: String,
    /// Where pods' volumes, logs and termination messages live.
    #[arg(long, env = "CICLO_NODE_STATE_DIR", default_value = ".cluster/node")]
    pub state_dir: PathBuf,
    /// The API server's loopback address, given to pods as KUBERNETES_SERVICE_HOST.
    #[arg(long, env = "CICLO_NODE_API_SERVER_HOST", default_value = "127.0.0.1")]
    pub api_server_host: String,
    /// The API server's port, given to pods as KUBERNETES_SERVICE_PORT.
    #[arg(long, env = "CICLO_NODE_API_SERVER_PORT", default_value_t = 6443)]
    pub api_server_port: u16,
    /// Port of the kubelet API (container logs), on 127.0.0.1.
    #[arg(long, env = "CICLO_NODE_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Serving certificate of the kubelet API.
    #[arg(long, env = "CICLO_NODE_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Key of the serving certificate.
    #[arg(long, env = "CICLO_NODE_TLS_KEY")]
    pub tls_key: PathBuf,
    /// CA that signs the API server's kubelet-client certificate.
    #[arg(long, env = "CICLO_NODE_CLIENT_CA")]
    pub client_ca: PathBuf,
    /// The first two octets of the pods' loopback addresses (127.X.Y.Z with X from here).
    #[arg(long, env = "CICLO_NODE_POD_NET", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub pod_net: u8,
    /// CPU capacity to report.
    #[arg(long, env = "CICLO_NODE_CPU", default_value = "16")]
    pub cpu: String,
    /// Memory capacity to report.
    #[arg(long, env = "CICLO_NODE_MEMORY", default_value = "64Gi")]
    pub memory: String,
    /// Pod capacity to report.
    #[arg(long, env = "CICLO_NODE_PODS", default_value_t = 110)]
    pub pods: u32,
    /// `nvidia.com/gpu` capacity to report (pods get NVIDIA_VISIBLE_DEVICES for theirs).
    #[arg(long, env = "CICLO_NODE_GPUS", default_value_t = 0)]
    pub gpus: u32,
    /// Map an image to a host binary used when a container gives no `command`, as
    /// `NAME=PATH`; NAME matches the image's last path segment without tag or digest
    /// (`ciclo=/usr/local/bin/ciclo` serves `ghcr.io/ciclo-dev/ciclo:v1`).
    #[arg(
        long = "image-entrypoint",
        env = "CICLO_NODE_IMAGE_ENTRYPOINTS",
        value_delimiter = ','
    )]
    pub image_entrypoints: Vec<String>,
    /// Base restart back-off for crashed containers, in seconds (doubles up to 60 s).
    #[arg(long, env = "CICLO_NODE_RESTART_BACKOFF", default_value_t = 1)]
    pub restart_backoff_seconds: u64,
    /// Log as JSON.
    #[arg(long, env = "CICLO_NODE_LOG_JSON")]
    pub log_json: bool,
}

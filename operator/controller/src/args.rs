//! Flags of `ciclo operator`; every one can also be set from the environment.

use std::net::SocketAddr;

#[derive(clap::Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Where `/metrics`, `/healthz` and `/readyz` are served. In a pod, bind the pod's
    /// address (`$(POD_IP):8080`) so Prometheus and the kubelet reach it.
    #[arg(
        long,
        env = "CICLO_METRICS_BIND_ADDRESS",
        default_value = "127.0.0.1:8080"
    )]
    pub metrics_bind_address: SocketAddr,
    /// Elect a leader on a Lease so that only one replica reconciles.
    #[arg(long, env = "CICLO_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(
        long,
        env = "CICLO_LEADER_ELECTION_LEASE",
        default_value = "ciclo-operator"
    )]
    pub leader_election_lease: String,
    /// The Lease's namespace: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ciclo-system")]
    pub leader_election_namespace: String,
    /// How long a leader's Lease lasts without renewal, in seconds: a standby takes over at
    /// most this long after the leader dies (at once when it stops cleanly).
    #[arg(long, env = "CICLO_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// This replica's name in the Lease (the pod name; a random suffix is appended).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Watch only these namespaces (comma-separated; a namespaced install, whose rights are
    /// Roles in exactly these namespaces); all namespaces when unset.
    #[arg(long, env = "CICLO_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// The image of the Jobs ciclo runs itself (dataset checks): this operator's own image.
    #[arg(
        long,
        env = "CICLO_IMAGE",
        default_value = "ghcr.io/ciclo-dev/ciclo:dev"
    )]
    pub image: String,
    /// How many objects of one kind are reconciled at once (0: no limit). The client speaks
    /// HTTP/1.1, so every reconcile waiting on the API server holds a TLS connection of its
    /// own: without a limit, a restart with 1000 TrainingRuns reconciled them all at once over
    /// ~1100 connections and peaked at 94 MB; with 32, over 47 connections, at 50 MB, and as
    /// fast. 8 fell ~30 s behind 1000 TrainingRuns applied at once; 32 keeps up
    /// (e2e/bench/trainingruns.sh measures both).
    #[arg(long, env = "CICLO_MAX_CONCURRENT_RECONCILES", default_value_t = 32)]
    pub max_concurrent_reconciles: u16,
    #[command(flatten)]
    pub artifact_store: ArtifactStoreArgs,
    /// Log as JSON lines (for log collectors); human-readable otherwise. Levels come from RUST_LOG.
    #[arg(long, env = "CICLO_LOG_JSON")]
    pub log_json: bool,
}

impl OperatorArgs {
    /// Makes the identity unique to this process: the pod (or host) name plus a random
    /// suffix, so a restarted container is a new candidate, not a holder that never renewed.
    pub fn with_unique_identity(mut self) -> Self {
        let name = self
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok());
        self.identity = Some(format!(
            "{}_{:08x}",
            name.unwrap_or_else(|| "ciclo".into()),
            rand::random::<u32>()
        ));
        self
    }

    /// This process's identity in the Lease and on its Events.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| "ciclo".into())
    }
}

/// The shared artifact store: where dataset versions' manifests, profiles and reports, models
/// and captures are kept, under `<uri>/<namespace>/…`, for every namespace that names no store
/// of its own (controllers/artifact_store.rs).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ArtifactStoreArgs {
    /// The store's root as a URI (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///…`).
    /// Datasets stay `Stalled` with reason `NoArtifactStore` until it is set.
    #[arg(long = "artifact-store", env = "CICLO_ARTIFACT_STORE")]
    pub uri: Option<String>,
    /// S3-compatible endpoint of the store.
    #[arg(
        long = "artifact-store-endpoint",
        env = "CICLO_ARTIFACT_STORE_ENDPOINT"
    )]
    pub endpoint: Option<String>,
    #[arg(long = "artifact-store-region", env = "CICLO_ARTIFACT_STORE_REGION")]
    pub region: Option<String>,
    /// Address the store's buckets by path.
    #[arg(
        long = "artifact-store-force-path-style",
        env = "CICLO_ARTIFACT_STORE_FORCE_PATH_STYLE"
    )]
    pub force_path_style: bool,
    /// A Secret of this name, in the namespace of each workload, holds the store's
    /// credentials (object_store's names: `AWS_ACCESS_KEY_ID`, …). Unset: the store is
    /// reached without keys (or through the pods' workload identity).
    #[arg(long = "artifact-store-secret", env = "CICLO_ARTIFACT_STORE_SECRET")]
    pub secret: Option<String>,
    /// The namespaces that may use this shared store (comma-separated; empty: every
    /// namespace). Any namespace may name its own store with a ConfigMap
    /// `ciclo-artifact-store`; one that has none and is not listed gets `NoArtifactStore`.
    #[arg(
        long = "artifact-store-namespaces",
        env = "CICLO_ARTIFACT_STORE_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
}

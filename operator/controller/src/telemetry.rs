//! Structured logs: human-readable by default, JSON lines with `--log-json`.

pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn,kube_lease_manager=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests) is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

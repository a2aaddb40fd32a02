//! The part of the kubelet API the API server proxies to: container logs (`kubectl logs`,
//! with `-f`, `--previous` and `--tail`). HTTPS on loopback, and only clients with a
//! certificate from the cluster CA (the API server's kubelet-client identity) get in.

use crate::args::NodeArgs;
use crate::pod::NodeContext;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn serve(args: NodeArgs, ctx: Arc<NodeContext>, shutdown: CancellationToken) {
    if let Err(e) = serve_inner(args, ctx, shutdown).await {
        tracing::error!(error = %e, "kubelet API stopped");
    }
}

async fn serve_inner(
    args: NodeArgs,
    ctx: Arc<NodeContext>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&args)?));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.kubelet_port)).await?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_IMPLEMENTED,
                "not supported by the ciclo process node (only /containerLogs is)\n",
            )
        })
        .with_state(ctx);
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(stream).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn tls_config(args: &NodeArgs) -> anyhow::Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(&args.tls_cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.tls_key)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&args.client_ca)? {
        roots.add(ca?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
    Ok(rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    follow: Option<String>,
    previous: Option<String>,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1"))
}

async fn container_logs(
    State(ctx): State<Arc<NodeContext>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let dir = ctx.log_dir(&namespace, &pod, &container);
    let mut runs: Vec<u32> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    runs.sort_unstable();
    let run = if flag(&q.previous) {
        runs.iter().rev().nth(1)
    } else {
        runs.last()
    };
    let Some(run) = run.copied() else {
        let what = if flag(&q.previous) {
            "has no previous run"
        } else {
            "has not started"
        };
        return (
            StatusCode::NOT_FOUND,
            format!("container {container:?} in pod {pod:?} {what}\n"),
        )
            .into_response();
    };
    let file = dir.join(format!("{run}.log"));
    let done = dir.join(format!("{run}.done"));
    let content = tokio::fs::read(&file).await.unwrap_or_default();
    let mut start = 0;
    if let Some(n) = q.tail_lines {
        start = tail_start(&content, n);
    }
    let mut head = content[start..].to_vec();
    if let Some(limit) = q.limit_bytes {
        head.truncate(limit);
    }
    if !flag(&q.follow) || q.limit_bytes.is_some() {
        return head.into_response();
    }
    // Follow: stream what is appended until the run is over.
    let offset = content.len() as u64;
    let stream = futures::stream::unfold(
        (Some(head), file, done, offset),
        |(first, file, done, offset): (Option<Vec<u8>>, PathBuf, PathBuf, u64)| async move {
            if let Some(bytes) = first {
                return Some((Ok::<_, std::io::Error>(bytes), (None, file, done, offset)));
            }
            loop {
                let finished = done.exists();
                let bytes = read_from(&file, offset).await;
                if !bytes.is_empty() {
                    let next = offset + bytes.len() as u64;
                    return Some((Ok(bytes), (None, file, done, next)));
                }
                if finished {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    );
    Body::from_stream(stream).into_response()
}

async fn read_from(file: &std::path::Path, offset: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let Ok(mut f) = tokio::fs::File::open(file).await else {
        return Vec::new();
    };
    if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf).await;
    buf
}

/// Byte offset where the last `n` lines of `content` begin.
fn tail_start(content: &[u8], n: usize) -> usize {
    if n == 0 {
        return content.len();
    }
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tail_keeps_the_last_lines() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(&log[tail_start(log, 1)..], b"three\n");
        assert_eq!(&log[tail_start(log, 2)..], b"two\nthree\n");
        assert_eq!(&log[tail_start(log, 9)..], log);
        assert_eq!(&log[tail_start(log, 0)..], b"");
        assert_eq!(
            &b"no newline"[tail_start(b"no newline", 1)..],
            b"no newline"
        );
    }
}

//! A tiny HTTP server for the e2e tests: binds `$POD_IP:$PORT` (as a real pod binds its
//! own address) and answers every request with its pod's name, so a test can tell which
//! pod answered.
#![forbid(unsafe_code)]

use axum::Router;
use axum::routing::get;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let ip = std::env::var("POD_IP")?;
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "8080".into())
        .parse()?;
    let name = std::env::var("POD_NAME").unwrap_or_else(|_| "unknown".into());
    let app = Router::new().fallback(get(move || async move { format!("hello from {name}\n") }));
    let listener = tokio::net::TcpListener::bind((ip.as_str(), port)).await?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            sigterm.recv().await;
        })
        .await?;
    Ok(())
}

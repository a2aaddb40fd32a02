//! `ciclo serve` in a process of its own, for what only a process shows: signals, the exit
//! status, settings from the environment. The process is this test binary again, running
//! the ignored test [`serve_from_environment`], which calls `ciclo_serve::run` as
//! `ciclo serve` does.

use super::http;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set in the child's environment: run the server there, nowhere else.
const CHILD: &str = "CICLO_SERVE_TEST_CHILD";

#[test]
#[ignore = "the server process the lifecycle tests start"]
fn serve_from_environment() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // As `ciclo`'s main: object_store's client needs a TLS provider chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = super::server::args_from_env();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = runtime.block_on(ciclo_serve::run(args)) {
        panic!("ciclo serve: {e}");
    }
}

pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

/// A port free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `ciclo serve` with `env` (the `CICLO_…` settings) and no others from this process.
pub fn spawn(env: &[(&str, String)]) -> Process {
    let port = free_port();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        "common::process::serve_from_environment",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CICLO_")) {
        command.env_remove(k);
    }
    let mut child = command
        .env(CHILD, "1")
        .env("RUST_LOG", "info")
        .env("CICLO_ADDRESS", "127.0.0.1")
        .env("CICLO_PORT", port.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Process {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        stderr,
    }
}

impl Process {
    /// What it logged so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM, as the kubelet does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Its exit status, once it exits within `within`.
    pub fn exit(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < within,
                "still running after {within:?}; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until it answers `/v2/health/live`.
    pub async fn wait_live(&mut self) {
        for _ in 0..1000 {
            assert!(self.running(), "it exited; logs:\n{}", self.logs());
            if tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && http::get(self.addr, "/v2/health/live").await.status == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not live after 20 s; logs:\n{}", self.logs());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

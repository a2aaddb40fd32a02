//! A real headless browser (Debian's Chromium, driven through its ChromeDriver over
//! WebDriver by fantoccini) looking at a real `ciclo ui` process.
//!
//! Nothing leaves loopback: the browser's proxy is a closed port on 127.0.0.1 (loopback
//! bypasses it), its host names resolve to nothing but localhost, and its background
//! services (updates, sync, metrics, safe browsing) are off.

use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ChromeDriver and the browser session it runs.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts ChromeDriver (`$CHROMEDRIVER`, else /usr/bin/chromedriver) and a headless
    /// Chromium (`$CHROMIUM`, else /usr/bin/chromium) session of 1280 x 1400 pixels.
    pub async fn start() -> Browser {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {driver_bin} (apt-get install chromium-driver): {e}")
            });
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1400",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-breakpad",
            "--metrics-recording-only",
            "--no-pings",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::rustls()
                .expect("rustls roots")
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for ChromeDriver: {e}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("no WebDriver session from {driver_bin} with {chromium}: {e}"),
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// How many elements `css` finds on the page as rendered now.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// The text of the first element `css` finds.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Clicks the first element `css` finds, as a user would.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Waits until `check` holds of the page, without touching it (live updates).
    pub async fn until<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in {timeout:?}; the page: {}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Saves the page as `<dir>/<name>.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// A `ciclo ui` process (the binary `make build` made, or `$CICLO_BIN`).
pub struct Ui {
    child: Child,
    /// The address it printed, with its token.
    pub url: String,
}

impl Ui {
    /// Starts `ciclo ui -n namespace` with `kubeconfig` and the environment `env`.
    pub fn start(namespace: &str, kubeconfig: &Path, env: &[(&str, String)]) -> Ui {
        let bin = std::env::var_os("CICLO_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| ciclo_e2e::repo_root().join("target/debug/ciclo"));
        let mut child = Command::new(&bin)
            .args(["ui", "-n", namespace])
            .env("KUBECONFIG", kubeconfig)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "ciclo ui printed {line:?}"
        );
        Ui { child, url }
    }

    /// The address of `path` on this view (after the token was traded for the cookie).
    pub fn at(&self, path: &str) -> String {
        let base = &self.url[..self.url.find('/').unwrap() + 2];
        let host = &self.url[base.len()..];
        let host = &host[..host.find('/').unwrap_or(host.len())];
        format!("{base}{host}{path}")
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the test's screenshots go: `$CICLO_E2E_ARTIFACTS/ui`, else `target/e2e-artifacts/ui`.
pub fn artifacts() -> PathBuf {
    std::env::var_os("CICLO_E2E_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| ciclo_e2e::repo_root().join("target/e2e-artifacts"))
        .join("ui")
}

pub mod tour;

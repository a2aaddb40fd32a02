//! The team's git repository on the local git server (e2e/flux/up.sh), as a team works with
//! it: a clone, files written, a commit pushed with `git`; and the Flux objects that sync it
//! into a test's namespace.

use crate::repo_root;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `make flux-up` wrote to `.flux/env`: where the git server is and its credentials.
pub struct GitServer {
    /// `http://host:port`, reachable from pods, Flux and in-cluster-netns.sh.
    pub base_url: String,
    pub user: String,
    pub password: String,
    /// The folder of bare repositories the server serves.
    pub repos: PathBuf,
}

impl GitServer {
    /// The running server, or a panic saying how to start it.
    pub fn running() -> GitServer {
        let env_file = repo_root().join(".flux/env");
        let env = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the git server and Flux are not up (make flux-up)",
                env_file.display()
            )
        });
        let vars: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
        let credentials = std::fs::read_to_string(vars["GIT_CREDENTIALS_FILE"]).unwrap();
        let (user, password) = credentials.trim().split_once(':').unwrap();
        GitServer {
            base_url: vars["GIT_BASE_URL"].to_string(),
            user: user.to_string(),
            password: password.to_string(),
            repos: PathBuf::from(vars["GIT_REPOS"]),
        }
    }

    /// `Authorization` for git's `http.extraHeader`: the password never in a URL or a
    /// command line.
    fn authorization(&self) -> String {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.user, self.password));
        format!("Authorization: Basic {token}")
    }
}

/// A team repository: a new bare repository `name.git` on the server and a working clone.
pub struct TeamRepo {
    server: GitServer,
    pub name: String,
    work: tempfile::TempDir,
}

impl TeamRepo {
    pub fn new(name: &str) -> TeamRepo {
        let server = GitServer::running();
        let bare = server.repos.join(format!("{name}.git"));
        let _ = std::fs::remove_dir_all(&bare);
        run_git(
            &server.repos,
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                &bare.to_string_lossy(),
            ],
        );
        let work = tempfile::tempdir().unwrap();
        let repo = TeamRepo {
            server,
            name: name.to_string(),
            work,
        };
        repo.git(&["init", "--quiet", "-b", "main"]);
        repo.git(&["remote", "add", "origin", &repo.url()]);
        repo
    }

    /// The repository's URL as Flux and ciclo reach it.
    pub fn url(&self) -> String {
        format!("{}/{}.git", self.server.base_url, self.name)
    }

    pub fn write(&self, path: &str, content: &str) {
        let file = self.work.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }

    pub fn remove(&self, path: &str) {
        self.git(&["rm", "--quiet", path]);
    }

    /// Commits everything and pushes it to `main`; returns the commit's id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.push()
    }

    /// Fetches `main` and moves the clone to it (after someone else, e.g. ciclo, pushed).
    pub fn pull(&self) {
        self.git(&["fetch", "--quiet", "origin", "main"]);
        self.git(&["reset", "--quiet", "--hard", "origin/main"]);
    }

    /// Pushes what is committed in the clone (a `git revert`, say) to `main`; returns the
    /// head's id.
    pub fn push(&self) -> String {
        self.git(&["push", "--quiet", "origin", "HEAD:main"]);
        self.head()
    }

    /// A file of the clone.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.work.path().join(path)).unwrap()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// The bare repository on the server's disk (the test runs beside the server).
    pub fn bare(&self) -> PathBuf {
        self.server.repos.join(format!("{}.git", self.name))
    }

    /// Holds the answer to each push for `seconds` after applying it (`None`: answer at
    /// once): the gitserver's `hold-push-answer` file.
    pub fn hold_push_answers(&self, seconds: Option<u32>) {
        let file = self.bare().join("hold-push-answer");
        match seconds {
            Some(s) => std::fs::write(file, s.to_string()).unwrap(),
            None => {
                let _ = std::fs::remove_file(file);
            }
        }
    }

    /// The full messages of `branch`'s commits on the server, newest first, with their ids.
    pub fn messages(&self, branch: &str) -> Vec<(String, String)> {
        let log = run_git(&self.bare(), &["log", "--format=%H%n%B%x00", branch]);
        log.split('\0')
            .filter_map(|entry| {
                let (id, message) = entry.trim_start().split_once('\n')?;
                Some((id.to_string(), message.trim().to_string()))
            })
            .collect()
    }

    /// Runs git in the clone (as the team's author, with the server's credentials).
    pub fn git(&self, args: &[&str]) -> String {
        let header = format!("http.extraHeader={}", self.server.authorization());
        let mut all = vec![
            "-c",
            &header,
            "-c",
            "user.name=ML team",
            "-c",
            "user.email=ml-team@example.com",
        ];
        all.extend_from_slice(args);
        run_git(self.work.path(), &all)
    }

    /// The Secret, GitRepository and Kustomization that make Flux apply `path` of this
    /// repository into `target` (pruning what is deleted, `wait: true` on ciclo's
    /// conditions), applied in `ns`; Flux looks for new commits every `interval`.
    pub fn flux_objects(&self, path: &str, target: &str, interval: &str) -> String {
        format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: git-credentials}}
stringData: {{username: "{user}", password: "{password}"}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: team}}
spec:
  interval: {interval}
  url: {url}
  ref: {{branch: main}}
  secretRef: {{name: git-credentials}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: team}}
spec:
  interval: 1m
  sourceRef: {{kind: GitRepository, name: team}}
  path: {path}
  targetNamespace: {target}
  prune: true
  wait: true
  timeout: 3m
"#,
            user = self.server.user,
            password = self.server.password,
            url = self.url(),
        )
    }
}

fn run_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {}: {}",
        args.last().unwrap_or(&""),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asks Flux to fetch and apply now (what `flux reconcile source git` does), instead of
/// waiting for the interval.
pub fn reconcile_now(ns: &str) {
    let at = format!(
        "reconcile.fluxcd.io/requestedAt={}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    for kind in ["gitrepository", "kustomization.kustomize.toolkit.fluxcd.io"] {
        let (ok, _, err) = crate::kubectl(
            &["annotate", "-n", ns, "--overwrite", kind, "team", &at],
            None,
        );
        assert!(ok, "annotate {kind}: {err}");
    }
}

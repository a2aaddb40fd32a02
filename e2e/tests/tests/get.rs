//! `ciclo get` against the local control plane, as a user runs it: the table lists the
//! objects with the conditions the operator wrote, and `--watch`, piped as a demo script
//! pipes it, prints a new table when an object changes, and ends cleanly on SIGTERM.

use ciclo_e2e::resources::{
    STORE_KEYS, TIMEOUT, apply, ciclo, condition, restricted_namespace, s3_dataset, status,
    wait_status,
};
use ciclo_e2e::s3::{endpoint, new_bucket, put};
use ciclo_e2e::{TestNamespace, ciclo_cli, client, kubeconfig, repo_root, wait_for};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A ModelDeployment of a model nothing registers: the operator stalls it at once
/// (`ModelNotFound`), without starting any pod.
fn deployment(name: &str) -> String {
    format!(
        "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {name}}}\nspec: {{model: {{name: {name}}}}}\n"
    )
}

/// The row named `name` of the table headed by `header`, as {column → cell}: columns are
/// three or more spaces apart.
fn row(table: &str, header: &str, name: &str) -> Option<Vec<(String, String)>> {
    let split = |l: &str| -> Vec<String> {
        l.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let mut lines = table.lines().skip_while(|l| !l.starts_with(header));
    let columns = split(lines.next()?);
    let cells = lines
        .take_while(|l| !l.is_empty())
        .map(split)
        .find(|cells| cells.first().is_some_and(|c| c == name))?;
    Some(columns.into_iter().zip(cells).collect())
}

fn cell(row: &[(String, String)], column: &str) -> String {
    row.iter()
        .find(|(c, _)| c == column)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn get_lists_datasets_and_deployments_with_their_conditions() {
    let (client, ns) = restricted_namespace("get-lists").await;
    let bucket = new_bucket(&ns.name).await;
    put(
        &bucket,
        "data/batch-1.csv",
        "id,species\n1,setosa\n2,virginica\n3,setosa\n".to_string(),
    )
    .await;
    apply(&ns.name, STORE_KEYS);
    apply(
        &ns.name,
        &s3_dataset(
            "flowers",
            &bucket,
            &endpoint(),
            "*.csv",
            "    columns:\n    - {name: id, type: integer}\n",
        ),
    );
    apply(&ns.name, &deployment("nowhere"));
    let datasets = ciclo(&client, &ns.name, "Dataset");
    let deployments = ciclo(&client, &ns.name, "ModelDeployment");
    let ds = wait_status(&datasets, "flowers", "the first version accepted", |s| {
        s["latest"]["id"].is_string()
    })
    .await;
    let md = wait_status(&deployments, "nowhere", "the deployment judged", |s| {
        condition(s, "Ready").is_some()
    })
    .await;
    let latest = ds["latest"]["id"].as_str().unwrap();
    let md_ready = condition(&md, "Ready").unwrap();

    let (ok, table, err) = ciclo_cli(&["get", "-n", &ns.name]);
    assert!(ok, "ciclo get failed: {err}");
    let flowers = row(&table, "DATASET", "flowers").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(cell(&flowers, "READY"), "True", "{table}");
    assert_eq!(cell(&flowers, "REASON"), "VersionAccepted", "{table}");
    assert_eq!(cell(&flowers, "LATEST"), latest[..12], "{table}");
    assert_eq!(cell(&flowers, "ROWS"), "3", "{table}");
    assert_eq!(cell(&flowers, "VERDICT"), "Accepted", "{table}");
    let nowhere = row(&table, "MODELDEPLOYMENT", "nowhere").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(cell(&nowhere, "READY"), md_ready["status"], "{table}");
    assert_eq!(cell(&nowhere, "REASON"), md_ready["reason"], "{table}");
    assert_eq!(cell(&nowhere, "SERVING"), "-", "{table}");
    // No training runs or model versions here: no tables for them.
    assert!(
        !table.contains("TRAININGRUN") && !table.contains("MODELVERSION"),
        "{table}"
    );

    // For scripts: the same, as JSON.
    let (ok, json, err) = ciclo_cli(&["get", "-n", &ns.name, "ds,md", "-o", "json"]);
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let items = doc["items"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["kind"].as_str().unwrap(), i["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("Dataset", "flowers"), ("ModelDeployment", "nowhere")]
    );
    assert_eq!(items[0]["latest"], latest);
    assert_eq!(items[0]["namespace"], ns.name.as_str());
    assert_eq!(items[1]["ready"]["reason"], md_ready["reason"]);
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn get_watch_prints_a_new_table_when_an_object_changes() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "get-watch").await.unwrap();
    apply(&ns.name, &deployment("first"));
    let deployments = ciclo(&client, &ns.name, "ModelDeployment");
    wait_for(TIMEOUT, "the first deployment judged", || async {
        Ok(condition(&status(&deployments, "first").await, "Ready").is_some())
    })
    .await
    .unwrap();

    let mut watch = Watch::start(&["get", "-w", "-n", &ns.name]);
    let first = watch.table_with("first", Duration::from_secs(30));
    assert!(
        first.lines().next().unwrap().starts_with("--- "),
        "piped, each table follows a timestamp line:\n{first}"
    );
    assert!(row(&first, "MODELDEPLOYMENT", "second").is_none());

    apply(&ns.name, &deployment("second"));
    let later = watch.table_with("second", Duration::from_secs(60));
    assert!(row(&later, "MODELDEPLOYMENT", "first").is_some(), "{later}");

    // SIGTERM, as a demo script's cleanup sends: an ordinary end.
    let code = watch.terminate();
    assert_eq!(code, Some(0), "ciclo get -w should exit 0 on SIGTERM");
}

/// `ciclo get -w` running with its stdout piped, read line by line on a thread.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// A line read ahead, not yet handed out.
    pending: Option<String>,
    /// Everything handed out so far, for failure messages.
    seen: String,
}

impl Watch {
    fn start(args: &[&str]) -> Watch {
        let bin = std::env::var_os("CICLO_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/debug/ciclo"));
        let mut child = Command::new(&bin)
            .args(args)
            .env("KUBECONFIG", kubeconfig())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines,
            pending: None,
            seen: String::new(),
        }
    }

    /// The first table printed from now on that lists `name`, or a panic after `timeout`.
    /// Piped, each table follows a `--- <time>` line: a table is complete when the next
    /// such line comes, or when the output pauses.
    fn table_with(&mut self, name: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut table = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.next_line(left) else {
                panic!(
                    "no table listing {name} within {timeout:?}; ciclo get -w printed:\n{}",
                    self.seen
                )
            };
            if line.starts_with("--- ") {
                if lists(&table, name) {
                    self.pending = Some(line);
                    return table;
                }
                table.clear();
            }
            table.push_str(&line);
            table.push('\n');
            if lists(&table, name) && self.quiet_for(Duration::from_millis(500)) {
                return table;
            }
        }
    }

    fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.pending.take() {
            Some(line) => Some(line),
            None => self.receive(timeout),
        }
    }

    /// Whether no line comes within `d` (one that does is kept for the next read).
    fn quiet_for(&mut self, d: Duration) -> bool {
        if self.pending.is_some() {
            return false;
        }
        self.pending = self.receive(d);
        self.pending.is_none()
    }

    fn receive(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push_str(&line);
        self.seen.push('\n');
        Some(line)
    }

    /// Sends SIGTERM and returns the exit code (None: killed, or still running after 10 s).
    fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a row of `table` is named `name`.
fn lists(table: &str, name: &str) -> bool {
    table
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

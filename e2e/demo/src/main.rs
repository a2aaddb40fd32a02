//! `make demo`: the example team's ML cycle, narrated. `make demo` has built ciclo, started
//! the cluster and the S3 store and installed ciclo from its chart; this program lands the
//! data and follows everything that happens because of it, with no human step.
#![forbid(unsafe_code)]

use ciclo_demo::cycle::{Cycle, NAME};
use ciclo_demo::scenario::{self, Iteration, Narrator, Outcome, Stage};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "ml-team";
const BUCKET: &str = "ciclo-demo";
const BATCHES: [&str; 4] = [
    "batch-1.csv",
    "batch-2.csv",
    "batch-3.csv",
    "broken-batch.csv",
];

/// Prints each part's title, each step with the seconds since its batch landed, and the
/// resources as `ciclo get` shows them at the end of each part (through git, beside Flux's
/// own status and the team's latest commits).
struct Terminal {
    started: Instant,
    gitops: Option<String>,
}

impl Narrator for Terminal {
    fn part(&mut self, title: &str) {
        println!("\n-- {title}\n");
    }
    fn part_done(&mut self) {
        show_table(NAMESPACE);
        if let Some(git_log) = &self.gitops {
            show_flux(NAMESPACE, git_log);
        }
    }
    fn step(&mut self, since: Duration, what: &str) {
        println!("  {:>6.1} s  {what}", since.as_secs_f64());
    }
    fn note(&mut self, text: &str) {
        println!("           {text}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = ciclo_e2e::client().await?;
    // GITOPS=1: the resources come from commits to the local git server, applied by Flux.
    let gitops = std::env::var("GITOPS").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut terminal = Terminal {
        started: Instant::now(),
        gitops: None,
    };
    println!(
        "\n== ciclo demo: the ML cycle three times, the third started by production, with no human step{}\n",
        if gitops {
            "; every change of what serves is a commit (GitOps: Flux applies the team's repository, ciclo promotes by commit)"
        } else {
            ""
        }
    );
    println!(
        "(live, in another terminal: KUBECONFIG={} target/debug/ciclo get -n {NAMESPACE} -w)\n",
        ciclo_e2e::kubeconfig().display()
    );
    fresh_start(&client).await?;
    let mut cycle = Cycle::new(client, NAMESPACE, BUCKET);
    if gitops {
        cycle = cycle.through_git();
        if let ciclo_demo::cycle::Source::Git(repo) = &cycle.source {
            terminal.gitops = Some(repo.bare().display().to_string());
        }
    }
    let outcome = match scenario::run(&cycle, &mut terminal).await {
        Ok(o) => o,
        Err(e) => {
            println!("\nThe demo stopped: {e:#}");
            show_table(NAMESPACE);
            std::process::exit(1);
        }
    };
    report(&outcome);
    println!(
        "\nDone in {:.0} s. Look around: `target/debug/ciclo get -n {NAMESPACE} -w`; `make demo-down` stops everything.\n",
        terminal.started.elapsed().as_secs_f64()
    );
    println!("{}", ui_command());
    Ok(())
}

/// The command that shows the demo in a browser (`ciclo ui`), run from the repository on
/// this machine. The dataset pages' profiles are in the S3 store: on the process node it
/// listens on loopback, which `ciclo ui` reaches; on the kubelet node it is inside the
/// cluster's network namespace, which nothing outside reaches.
fn ui_command() -> String {
    let kubeconfig = ciclo_e2e::kubeconfig();
    let inside = std::env::var_os("CICLO_NODE_ADDRESS").is_some();
    if inside {
        format!(
            "See it in a browser: KUBECONFIG={} target/debug/ciclo ui -n {NAMESPACE}\n\
             (it prints the address to open; the datasets' profiles are in the S3 store inside the\n\
             cluster's network namespace, which the view cannot reach from here: their pages say so,\n\
             everything else shows)\n",
            kubeconfig.display()
        )
    } else {
        format!(
            "See it in a browser: KUBECONFIG={} CICLO_ARTIFACTS_AWS_ENDPOINT={} target/debug/ciclo ui -n {NAMESPACE}\n\
             (it prints the address to open)\n",
            kubeconfig.display(),
            ciclo_e2e::s3::endpoint()
        )
    }
}

/// Removes what an earlier demo left: the namespace (and with it every ciclo object of the
/// team) and the batches in the bucket.
async fn fresh_start(client: &kube::Client) -> anyhow::Result<()> {
    let (_, out, _) = ciclo_e2e::kubectl(&["get", "namespace", NAMESPACE, "-o", "name"], None);
    if !out.trim().is_empty() {
        println!("removing the previous demo's namespace {NAMESPACE}…");
        let (ok, _, err) = ciclo_e2e::kubectl(
            &[
                "delete",
                "namespace",
                NAMESPACE,
                "--wait=true",
                "--timeout=180s",
            ],
            None,
        );
        anyhow::ensure!(ok, "deleting namespace {NAMESPACE}: {err}");
    }
    let http = reqwest::Client::new();
    let store = ciclo_e2e::s3::endpoint();
    let made = http.put(format!("{store}/{BUCKET}")).send().await?;
    anyhow::ensure!(
        made.status().is_success() || made.status() == 409,
        "creating bucket {BUCKET} at {store}: {}",
        made.status()
    );
    for batch in BATCHES {
        http.delete(format!("{store}/{BUCKET}/wdbc/{batch}"))
            .send()
            .await?;
    }
    // And what the previous demo's namespace left in the artifact store: its captured
    // requests and labels would otherwise be the production Dataset's first version at once.
    let artifacts = ciclo_e2e::s3::ARTIFACTS;
    for key in ciclo_e2e::s3::list(artifacts, &format!("{NAMESPACE}/")).await {
        http.delete(format!("{store}/{artifacts}/{key}"))
            .send()
            .await?;
    }
    let namespace = ciclo_e2e::repo_root().join("examples/gitops/ml-team/namespace.yaml");
    let (ok, _, err) = ciclo_e2e::kubectl(&["apply", "-f", &namespace.display().to_string()], None);
    anyhow::ensure!(ok, "creating namespace {NAMESPACE}: {err}");
    // Pods need the namespace's default ServiceAccount.
    ciclo_e2e::wait_for(
        Duration::from_secs(30),
        "the default ServiceAccount",
        || async {
            let sa: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
                kube::Api::namespaced(client.clone(), NAMESPACE);
            Ok(sa.get_opt("default").await?.is_some())
        },
    )
    .await?;
    println!("bucket s3://{BUCKET} at {store}, namespace {NAMESPACE} (restricted pod security)");
    Ok(())
}

fn report(outcome: &Outcome) {
    for (i, it) in outcome.iterations.iter().enumerate() {
        let n = i + 1;
        let unseen = if n == 3 { ", shifted" } else { "" };
        println!(
            "\n-- iteration {n}: the served model (version {n}) on rows it never saw{unseen}\n"
        );
        println!("           predicted  true");
        for (predicted, truth) in &it.predictions {
            let mark = if predicted == truth { "" } else { "  ✗" };
            println!("           {predicted:<9}  {truth}{mark}");
        }
        println!();
        print_timing(n, it);
        if let Some(load) = &it.load {
            println!(
                "           requests during the canary: {} sent, {} failed",
                load.total(),
                load.failed.len()
            );
        }
    }
    println!("\n-- where version 2 came from: ciclo lineage {NAME}:2 -n {NAMESPACE}\n");
    for line in outcome.lineage.lines() {
        println!("  {line}");
    }
    println!("\n-- where version 3 came from, production: ciclo lineage {NAME}:3 -n {NAMESPACE}\n");
    for line in outcome.production_lineage.lines() {
        println!("  {line}");
    }
}

/// Each timed step of iteration `n` and its latency: from the data landing, or for the third
/// iteration from the shifted stream's start (when the skew is reported first).
fn print_timing(n: usize, it: &Iteration) {
    let seconds = |stage| {
        it.time_of(stage)
            .map(|t| format!("{:.1} s", t.as_secs_f64()))
            .unwrap_or_else(|| "-".into())
    };
    let (from, first, start) = if n == 3 {
        (
            "the shifted stream's start",
            format!(
                "skew reported {}, labelled captured version ",
                seconds(Stage::Skewed)
            ),
            "shifted stream started",
        )
    } else {
        ("the data landing", String::new(), "new data landed")
    };
    println!(
        "           timing from {from}: {first}accepted {}, trained {}, judged {}, serving {}",
        seconds(Stage::Accepted),
        seconds(Stage::Trained),
        seconds(Stage::Judged),
        seconds(Stage::Serving),
    );
    println!(
        "           ITERATION LATENCY {n} ({start} → version {n} serving 100%): {:.1} s",
        it.latency().as_secs_f64()
    );
}

/// Flux's own status of the team's repository (its GitRepository and Kustomization) and the
/// repository's last commits, who made them and what they say.
fn show_flux(ns: &str, bare: &str) {
    let (ok, out, err) = ciclo_e2e::kubectl(
        &[
            "get",
            "-n",
            ns,
            "gitrepositories.source.toolkit.fluxcd.io,kustomizations.kustomize.toolkit.fluxcd.io",
        ],
        None,
    );
    println!("           $ kubectl get -n {ns} gitrepositories,kustomizations");
    for line in if ok { out } else { err }.lines() {
        println!("           {line}");
    }
    let log = std::process::Command::new("git")
        .args(["log", "-5", "--format=%h %<(8,trunc)%an %s", "main"])
        .current_dir(bare)
        .output();
    println!("\n           $ git log -5 --oneline  (the team's repository)");
    if let Ok(log) = log {
        for line in String::from_utf8_lossy(&log.stdout).lines() {
            println!("           {line}");
        }
    }
    println!();
}

/// The team's resources as `ciclo get` shows them, indented under the narrative.
fn show_table(ns: &str) {
    let (ok, out, err) = ciclo_e2e::ciclo_cli(&["get", "-n", ns]);
    println!("\n           $ ciclo get -n {ns}");
    let text = if ok { out } else { err };
    for line in text.lines() {
        println!("           {line}");
    }
    println!();
}

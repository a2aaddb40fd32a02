//! `ciclo get [KIND...]`: a table of ciclo's resources and their conditions, once or live
//! (`--watch`), for people following the cycle from a terminal or a demo script.
//!
//! Steps, one module each: the arguments are checked here (no I/O, so an unknown kind fails
//! before any connection) → [`fetch`] lists the objects, or [`watch`] keeps a reflector
//! store per kind → [`summary`] reduces each object to what a person needs, without I/O,
//! judging its conditions with [`ready`] → [`table`] prints the summaries, and [`frame`]
//! decides what a live view prints on each change. `-o json` prints the summaries as they are.

pub(crate) mod fetch;
#[cfg(test)]
pub(crate) mod fixtures;
mod frame;
mod ready;
pub(crate) mod summary;
pub(crate) mod table;
mod watch;

pub(crate) use watch::stopped;

use crate::one_line::one_line;
use anyhow::Context as _;
use kube::Client;
use std::process::ExitCode;
use std::str::FromStr;

/// Arguments of `ciclo get`. No `env` fallbacks, as `ciclo lineage`: this runs next to
/// kubectl, and the namespace comes from where kubectl takes it.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Kinds to show: datasets (ds), trainingruns (tr), modelversions (mv), modeldeployments
    /// (md), also comma-separated; default: all four, in the order of the cycle.
    #[arg(value_name = "KIND", value_delimiter = ',')]
    pub kinds: Vec<Kind>,
    /// The namespace; default: the kubeconfig context's namespace, as kubectl.
    #[arg(short, long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Every namespace (adds a NAMESPACE column).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Keep watching, and print the table again on every change until Ctrl-C.
    #[arg(short, long)]
    pub watch: bool,
    /// How to print it: `wide` adds the why (rejections, failures, gates) and endpoints;
    /// `json` is for scripts (with --watch: one line per change).
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Json,
}

/// The kinds `ciclo get` shows, in the order of the cycle (and of the tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Dataset,
    TrainingRun,
    ModelVersion,
    ModelDeployment,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Dataset,
        Kind::TrainingRun,
        Kind::ModelVersion,
        Kind::ModelDeployment,
    ];

    /// The kind's name in the API, as `-o json` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dataset => "Dataset",
            Kind::TrainingRun => "TrainingRun",
            Kind::ModelVersion => "ModelVersion",
            Kind::ModelDeployment => "ModelDeployment",
        }
    }

    /// The plural and short names kubectl also takes.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Dataset => ("datasets", "ds"),
            Kind::TrainingRun => ("trainingruns", "tr"),
            Kind::ModelVersion => ("modelversions", "mv"),
            Kind::ModelDeployment => ("modeldeployments", "md"),
        }
    }

    /// In a sentence: "model versions".
    pub fn words(self) -> &'static str {
        match self {
            Kind::Dataset => "datasets",
            Kind::TrainingRun => "training runs",
            Kind::ModelVersion => "model versions",
            Kind::ModelDeployment => "model deployments",
        }
    }
}

impl FromStr for Kind {
    type Err = String;

    /// The plural, singular or short name, in any case, as kubectl takes them, with or
    /// without the group (`datasets.ciclo.dev`).
    fn from_str(s: &str) -> Result<Self, String> {
        let wanted = s.to_ascii_lowercase();
        let wanted = wanted.strip_suffix(".ciclo.dev").unwrap_or(&wanted);
        Kind::ALL
            .into_iter()
            .find(|k| {
                let (plural, short) = k.names();
                wanted == plural || wanted == short || wanted == k.name().to_ascii_lowercase()
            })
            .ok_or_else(|| {
                let valid: Vec<String> = Kind::ALL
                    .iter()
                    .map(|k| format!("{} ({})", k.names().0, k.names().1))
                    .collect();
                format!("unknown kind {s:?}: ciclo get shows {}", valid.join(", "))
            })
    }
}

/// Which namespaces to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

impl Scope {
    /// "in namespace ml" / "in any namespace".
    pub fn words(&self) -> String {
        match self {
            Scope::Namespace(ns) => format!("in namespace {ns}"),
            Scope::All => "in any namespace".into(),
        }
    }
}

/// What to show, and where: the arguments once the defaults are filled in.
#[derive(Clone, Debug)]
pub struct View {
    /// Deduplicated, in the order of the cycle.
    pub kinds: Vec<Kind>,
    pub scope: Scope,
    pub output: Output,
}

impl View {
    fn new(args: &GetArgs, default_namespace: &str) -> View {
        let mut kinds = if args.kinds.is_empty() {
            Kind::ALL.to_vec()
        } else {
            args.kinds.clone()
        };
        kinds.sort();
        kinds.dedup();
        let scope = match (&args.namespace, args.all_namespaces) {
            (_, true) => Scope::All,
            (Some(ns), false) => Scope::Namespace(ns.clone()),
            (None, false) => Scope::Namespace(default_namespace.to_string()),
        };
        View {
            kinds,
            scope,
            output: args.output,
        }
    }
}

/// Lists (and with `--watch`, keeps watching) the objects and prints them. A failure to
/// reach the cluster at the start is one line on stderr, with a hint, and exit 1; Ctrl-C or
/// SIGTERM ends a watch with exit 0.
pub fn run(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = async {
            let client = Client::try_default()
                .await
                .context("loading the Kubernetes configuration (kubeconfig or in-cluster)")?;
            let view = View::new(args, client.default_namespace());
            let summaries = fetch::list(&client, &view).await?;
            anyhow::Ok((client, view, summaries))
        };
        let (client, view, summaries) = match started.await {
            Ok(started) => started,
            Err(e) => {
                eprintln!("error: {}", one_line(&e));
                if let Some(hint) = hint(&e) {
                    eprintln!("hint: {hint}");
                }
                return Ok(ExitCode::FAILURE);
            }
        };
        if args.watch {
            watch::run(client, &view, summaries).await?;
        } else {
            let now = jiff::Timestamp::now();
            let text = match view.output {
                Output::Json => format!("{}\n", summary::json_list(&summaries)),
                Output::Table | Output::Wide => table::render(&view, &summaries, now),
            };
            frame::write_stdout(&text);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// What to do about a failure to read the objects: install the CRDs when the API server
/// does not know them, else check which cluster KUBECONFIG points to. A refusal (403, …)
/// explains itself.
pub(crate) fn hint(e: &anyhow::Error) -> Option<&'static str> {
    match e.chain().find_map(|c| c.downcast_ref::<kube::Error>()) {
        Some(kube::Error::Api(status)) if status.code == 404 => Some(
            "the ciclo.dev CRDs are not installed on this cluster (`ciclo crds | kubectl apply -f -`, or install the chart)",
        ),
        Some(kube::Error::Api(_)) => None,
        Some(kube::Error::InferConfig(_)) => Some(
            "no kubeconfig found: point KUBECONFIG at your cluster's (kubectl reads the same, else ~/.kube/config)",
        ),
        _ => Some(
            "is the cluster up? ciclo reads it from $KUBECONFIG (else ~/.kube/config), as kubectl does",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        get: GetArgs,
    }

    fn parse(args: &[&str]) -> Result<GetArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("get").chain(args.iter().copied())).map(|c| c.get)
    }

    #[test]
    fn kinds_are_named_as_kubectl_names_them() {
        for (name, kind) in [
            ("datasets", Kind::Dataset),
            ("ds", Kind::Dataset),
            ("Dataset", Kind::Dataset),
            ("trainingrun", Kind::TrainingRun),
            ("TR", Kind::TrainingRun),
            ("modelversions.ciclo.dev", Kind::ModelVersion),
            ("mv", Kind::ModelVersion),
            ("md", Kind::ModelDeployment),
            ("modeldeployments", Kind::ModelDeployment),
        ] {
            assert_eq!(name.parse::<Kind>(), Ok(kind), "{name}");
        }
    }

    #[test]
    fn an_unknown_kind_is_named_with_the_valid_ones() {
        let err = parse(&["ds", "pods"])
            .expect_err("pods is refused")
            .to_string();
        assert!(err.contains("unknown kind \"pods\""), "{err}");
        assert!(
            err.contains(
                "datasets (ds), trainingruns (tr), modelversions (mv), modeldeployments (md)"
            ),
            "{err}"
        );
    }

    #[test]
    fn no_kind_means_all_four_in_the_order_of_the_cycle() {
        let view = View::new(&parse(&[]).unwrap(), "ml");
        assert_eq!(view.kinds, Kind::ALL);
        assert_eq!(view.scope, Scope::Namespace("ml".into()));
        let view = View::new(&parse(&["md,ds", "datasets", "-A"]).unwrap(), "ml");
        assert_eq!(view.kinds, [Kind::Dataset, Kind::ModelDeployment]);
        assert_eq!(view.scope, Scope::All);
        let view = View::new(&parse(&["-n", "team-a", "-w", "-o", "wide"]).unwrap(), "ml");
        assert_eq!(view.scope, Scope::Namespace("team-a".into()));
        assert_eq!(view.output, Output::Wide);
    }

    #[test]
    fn a_namespace_and_all_namespaces_exclude_each_other() {
        assert!(parse(&["-n", "ml", "-A"]).is_err());
    }
}

//! `ciclo lineage <model-version>`: the chain dataset version → run → model version →
//! deployments, as text or JSON.
//!
//! Three steps, one module each: parse the name here (no I/O, so a bad name fails before any
//! connection) → [`fetch`] reads the ModelVersion, then the TrainingRun and Dataset it names →
//! [`chain`] links them into a [`Lineage`](chain::Lineage) without I/O, which prints as JSON or
//! through [`text`]. The ModelVersion is the record; the TrainingRun and Dataset only add
//! detail, and either may be gone, or have pruned the entry from their history: that is shown,
//! never an error.

mod chain;
mod fetch;
#[cfg(test)]
mod fixtures;
mod text;

use crate::one_line::one_line;
use anyhow::Context as _;
use kube::Client;
use std::process::ExitCode;
use std::str::FromStr;

/// Arguments of `ciclo lineage`. No `env` fallbacks here, unlike the in-cluster commands: this
/// runs in a user's shell next to kubectl, and the namespace should come from where kubectl
/// takes it (the flag, else the kubeconfig context), not from a variable set elsewhere.
#[derive(clap::Args, Debug)]
pub struct LineageArgs {
    /// The ModelVersion: its name (`churn-2`) or `model:version` (`churn:2`).
    #[arg(value_name = "MODEL_VERSION")]
    pub target: Target,
    /// The namespace; default: the kubeconfig context's namespace, as kubectl.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// How to print it.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Which ModelVersion: by object name, or by model and number (found by their labels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Name(String),
    Number { model: String, version: i64 },
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((model, version)) => {
                if !is_dns_label(model) {
                    return Err(format!(
                        "{s:?}: the model in model:version must be a lowercase DNS label, as in churn:2"
                    ));
                }
                match version.parse::<i64>() {
                    Ok(n) if n >= 1 => Ok(Target::Number {
                        model: model.into(),
                        version: n,
                    }),
                    _ => Err(format!(
                        "{s:?}: the version in model:version must be a positive whole number, as in churn:2"
                    )),
                }
            }
            None if is_object_name(s) => Ok(Target::Name(s.into())),
            None => Err(format!(
                "{s:?} is neither a ModelVersion name (lowercase letters, digits, '-' and '.', as in churn-2) nor model:version (churn:2)"
            )),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes object name (DNS subdomain): dot-separated DNS labels.
fn is_object_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Reads the chain and prints it. Any failure (no ModelVersion, no cluster) is one line on
/// stderr and exit 1: this runs in a user's shell, where a backtrace (RUST_BACKTRACE is
/// often set by developers) would bury the sentence that matters.
pub fn run(args: &LineageArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lineage = runtime.block_on(async {
        let client = Client::try_default()
            .await
            .context("loading the Kubernetes configuration (kubeconfig or in-cluster)")?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        fetch::fetch(client, &namespace, &args.target).await
    });
    let lineage = match lineage {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&lineage)?),
        Output::Text => print!("{}", text::render_text(&lineage)),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_target_is_a_name_or_model_colon_version() {
        assert_eq!("churn-2".parse(), Ok(Target::Name("churn-2".into())));
        assert_eq!(
            "churn:2".parse(),
            Ok(Target::Number {
                model: "churn".into(),
                version: 2
            })
        );
        for bad in [
            "",
            "Churn-2",
            "churn_2",
            "churn:",
            ":2",
            "churn:0",
            "churn:-1",
            "churn:two",
            "a:1:2",
            "-churn",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn lineage_errors_print_each_cause_once() {
        let e = anyhow::Error::msg("tcp connect error: Connection refused")
            .context("client error (Connect)")
            .context("ServiceError: client error (Connect)")
            .context("reading ModelVersion iris-2 in namespace ml");
        assert_eq!(
            one_line(&e),
            "reading ModelVersion iris-2 in namespace ml: ServiceError: client error (Connect): tcp connect error: Connection refused"
        );
    }
}

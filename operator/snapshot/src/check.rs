//! `ciclo dataset snapshot`: one check of a dataset's source. List and hash the files (a
//! version id), and unless that is the version already checked under the same checks,
//! profile every column, check the expectations and the drift against the last accepted
//! version, and write `manifest.json`, `profile.json` and `report.json` under
//! `<artifacts>/<id>/`. The returned summary is what the Job reports to the operator.
//!
//! A check can also run as several workers (`--shards`), each over a share of the files,
//! worker 0 merging their results into what one worker gives: see `shard`. Both ways meet
//! in `unchanged` and `conclude` once the version's manifest is known.

use crate::artifacts::{Failed, Store};
use crate::manifest::Manifest;
use crate::report::{self, Report};
use crate::select::Selection;
use crate::shard::Sharding;
use crate::source::{self, ARTIFACTS_ENV_PREFIX, SOURCE_ENV_PREFIX};
use ciclo_core::expectations::{DriftLimit, Expectations};
use ciclo_core::snapshot_result::{CapturedRows, FailureReason, Outcome, SnapshotSummary};
use ciclo_profile::Format;
use object_store::ObjectStore;
use object_store::path::Path;
use std::sync::Arc;

/// What to check and where to keep the results.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CheckArgs {
    /// The dataset's files: `s3://bucket/prefix`, `gs://…`, `az://…`, `file:///dir`, `https://…`.
    /// Credentials come from `CICLO_SOURCE_AWS_…` (`_GOOGLE_…`, `_AZURE_…`) variables.
    #[arg(long)]
    pub source: String,
    /// S3-compatible endpoint of the source.
    #[arg(long)]
    pub source_endpoint: Option<String>,
    /// The source's region (S3).
    #[arg(long)]
    pub source_region: Option<String>,
    /// Address the source's buckets by path.
    #[arg(long)]
    pub source_force_path_style: bool,
    /// Globs a file must match (repeatable); none: every file.
    #[arg(long)]
    pub include: Vec<String>,
    /// Globs of files to leave out (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// csv, parquet or jsonl; unset: by each file's extension.
    #[arg(long)]
    pub format: Option<String>,
    /// The expectations, as JSON (a Dataset's `spec.schema`).
    #[arg(long)]
    pub expectations: Option<String>,
    /// The drift limit, as JSON (a Dataset's `spec.drift`).
    #[arg(long)]
    pub drift: Option<String>,
    /// Where this dataset's versions are kept: each goes to `<artifacts>/<id>/`.
    /// Credentials come from `CICLO_ARTIFACTS_AWS_…` variables.
    #[arg(long)]
    pub artifacts: String,
    /// S3-compatible endpoint of the artifact store.
    #[arg(long)]
    pub artifacts_endpoint: Option<String>,
    /// The artifact store's region (S3).
    #[arg(long)]
    pub artifacts_region: Option<String>,
    /// Address the artifact store's buckets by path.
    #[arg(long)]
    pub artifacts_force_path_style: bool,
    /// The version checked last: unchanged content under unchanged checks is `Unchanged`,
    /// and its manifest spares re-reading files whose size and ETag or time are the same.
    #[arg(long)]
    pub previous: Option<String>,
    /// The last accepted version, the baseline of the drift check.
    #[arg(long)]
    pub baseline: Option<String>,
    /// A ModelDeployment's capture (in the artifact store): its requests joined with their
    /// labels become one file under `--source`, and that file is the version.
    #[arg(long)]
    pub capture: Option<String>,
    /// Workers the check is split over, each hashing and profiling a contiguous share of the
    /// files (balanced by bytes), worker 0 merging the shares into what one worker gives:
    /// the pods of an Indexed Job. 1 (or 0): one worker does it all.
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// This worker's index, from 0 (which merges); required with `--shards` over 1.
    #[arg(long, env = "JOB_COMPLETION_INDEX")]
    pub shard_index: Option<usize>,
    /// Names the folder the workers hand their shares to worker 0 in,
    /// `<artifacts>/shards/<NAME>/` (the Job's name); required with `--shards` over 1.
    #[arg(long)]
    pub shard_dir: Option<String>,
    /// How long worker 0 waits for the other workers' shares once its own is done, e.g.
    /// `6h`, `90m` (default 6 hours).
    #[arg(long)]
    pub shard_wait: Option<jiff::SignedDuration>,
}

impl CheckArgs {
    /// How the artifact store (and a capture, which is kept in it) is opened.
    fn artifacts_options(&self) -> source::Options {
        source::Options {
            endpoint: self.artifacts_endpoint.clone(),
            region: self.artifacts_region.clone(),
            force_path_style: self.artifacts_force_path_style,
            env_prefix: ARTIFACTS_ENV_PREFIX.into(),
            ..Default::default()
        }
    }
}

/// What the settings parse into.
pub(crate) struct Checks {
    pub selection: Selection,
    pub format: Option<Format>,
    pub expectations: Option<Expectations>,
    pub drift: Option<DriftLimit>,
    /// A digest of the checks, so a version checked under other checks is checked again.
    pub digest: String,
}

impl Checks {
    fn parse(args: &CheckArgs) -> Result<Self, String> {
        let selection = Selection::new(&args.include, &args.exclude)?;
        let format = match args.format.as_deref() {
            None | Some("") => None,
            Some(f) => Some(
                serde_json::from_value(serde_json::Value::String(f.to_ascii_lowercase()))
                    .map_err(|_| format!("format {f:?}: expected csv, parquet or jsonl"))?,
            ),
        };
        let expectations: Option<Expectations> = parse_json(&args.expectations, "expectations")?;
        let drift: Option<DriftLimit> = parse_json(&args.drift, "drift")?;
        for id in [&args.previous, &args.baseline].into_iter().flatten() {
            if !is_version_id(id) {
                return Err(format!("{id:?} is not a version id (32 hex digits)"));
            }
        }
        let canonical =
            serde_json::to_string(&(&format, &expectations, &drift)).expect("checks serialize");
        Ok(Self {
            selection,
            format,
            expectations,
            drift,
            digest: blake3::hash(canonical.as_bytes()).to_hex()[..16].to_string(),
        })
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    json: &Option<String>,
    what: &str,
) -> Result<Option<T>, String> {
    json.as_deref()
        .filter(|j| !j.trim().is_empty())
        .map(|j| serde_json::from_str(j).map_err(|e| format!("{what}: {e}")))
        .transpose()
}

fn is_version_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Runs one check; every way it can go is in the summary.
pub async fn run(args: &CheckArgs) -> SnapshotSummary {
    match check(args).await {
        Ok(summary) => summary,
        Err((reason, message)) => SnapshotSummary::failed(reason, message),
    }
}

/// A check with its settings parsed and its stores opened.
pub(crate) struct Ready<'a> {
    pub args: &'a CheckArgs,
    pub checks: Checks,
    /// The source, and the dataset's prefix in it.
    pub data: Arc<dyn ObjectStore>,
    pub prefix: Path,
    pub store: Store,
}

async fn check(args: &CheckArgs) -> Result<SnapshotSummary, Failed> {
    let invalid = |m: String| (FailureReason::InvalidSpec, m);
    let checks = Checks::parse(args).map_err(invalid)?;
    let sharding = Sharding::parse(args).map_err(invalid)?;
    let (data, prefix) = source::open(
        &args.source,
        &source::Options {
            endpoint: args.source_endpoint.clone(),
            region: args.source_region.clone(),
            force_path_style: args.source_force_path_style,
            env_prefix: SOURCE_ENV_PREFIX.into(),
            ..Default::default()
        },
    )
    .map_err(|e| {
        invalid(format!(
            "the source: {e} (its credentials come from {SOURCE_ENV_PREFIX}* variables, in a Job from the Secret in spec.source.credentialsSecretRef)"
        ))
    })?;
    let (artifacts, root) = source::open(
        &args.artifacts,
        &args.artifacts_options(),
    )
    .map_err(|e| {
        (
            FailureReason::ArtifactStoreUnavailable,
            format!("the artifact store: {e} (its credentials come from {ARTIFACTS_ENV_PREFIX}* variables)"),
        )
    })?;
    let ready = Ready {
        args,
        checks,
        data,
        prefix,
        store: Store {
            artifacts,
            root,
            uri: args.artifacts.trim_end_matches('/').to_string(),
        },
    };
    match sharding {
        Some(sharding) => crate::shard::run(&ready, &sharding).await,
        None => one_worker(&ready).await,
    }
}

/// The whole check in this process.
async fn one_worker(ready: &Ready<'_>) -> Result<SnapshotSummary, Failed> {
    let Ready {
        args,
        checks,
        data,
        prefix,
        store,
    } = ready;
    let mut selection = checks.selection.clone();
    let captured = match &args.capture {
        Some(uri) => {
            let joined = join_capture(uri, args, data.as_ref(), prefix).await?;
            // The version is the joined file alone (or nothing, before any label).
            selection = Selection::new(&[joined.file.unwrap_or_default()], &[])
                .map_err(|m| (FailureReason::InvalidSpec, m))?;
            Some(joined.rows)
        }
        None => None,
    };

    let previous_manifest: Option<Manifest> = match &args.previous {
        Some(id) => store.read_json(id, report::MANIFEST).await?,
        None => None,
    };
    let snap = crate::snapshot(
        data.clone(),
        prefix,
        &selection,
        previous_manifest.as_ref(),
        source::reads_for(&args.source),
    )
    .await
    .map_err(|e| (FailureReason::SourceUnavailable, e.to_string()))?;
    let id = snap.manifest.version_id();
    tracing::info!(%id, files = snap.manifest.files.len(), hashed = snap.hashed, reused = snap.reused, "listed and hashed");

    if let Some(unchanged) = unchanged(ready, &id).await? {
        return Ok(unchanged);
    }
    let inputs = inputs(&snap.manifest, &snap.locations);
    let outcome = ciclo_profile::profile(
        data.clone(),
        inputs,
        checks.format,
        checks.expectations.as_ref(),
    )
    .await
    .map_err(|e| (FailureReason::SourceUnavailable, e.to_string()))?;
    let version = Version {
        id,
        manifest: snap.manifest,
        hashed: snap.hashed as u64,
        reused: snap.reused as u64,
        captured,
    };
    conclude(ready, version, outcome).await
}

/// The profiler's inputs: the manifest's files, at `locations` (in manifest order).
pub(crate) fn inputs(manifest: &Manifest, locations: &[Path]) -> Vec<ciclo_profile::Input> {
    manifest
        .files
        .iter()
        .zip(locations)
        .map(|(f, location)| ciclo_profile::Input {
            location: location.clone(),
            relative: f.path.clone(),
            size: f.size,
        })
        .collect()
}

/// The summary of version `id` as last checked, if it is the `--previous` version and was
/// checked under the same checks: then there is nothing new to check.
pub(crate) async fn unchanged(
    ready: &Ready<'_>,
    id: &str,
) -> Result<Option<SnapshotSummary>, Failed> {
    if ready.args.previous.as_deref() != Some(id) {
        return Ok(None);
    }
    let previous: Option<Report> = ready.store.read_json(id, report::REPORT).await?;
    Ok(previous
        .filter(|p| p.checks == ready.checks.digest)
        .map(|p| SnapshotSummary {
            outcome: Outcome::Unchanged,
            ..p.summary(ready.store.location(id))
        }))
}

/// A listed and hashed version.
pub(crate) struct Version {
    pub id: String,
    pub manifest: Manifest,
    /// Files read and hashed, by every worker.
    pub hashed: u64,
    /// Files whose hash came from the previous manifest.
    pub reused: u64,
    /// For a capture: what the version was joined from.
    pub captured: Option<CapturedRows>,
}

/// The verdict on a profiled version: its reasons (data failures, drift over the limit),
/// then `manifest.json`, `profile.json` and `report.json` written, the report last.
pub(crate) async fn conclude(
    ready: &Ready<'_>,
    version: Version,
    outcome: ciclo_profile::Outcome,
) -> Result<SnapshotSummary, Failed> {
    let Ready {
        args,
        checks,
        store,
        ..
    } = ready;
    let Version {
        id,
        manifest,
        hashed,
        reused,
        captured,
    } = version;
    let mut reasons = Vec::new();
    if captured.as_ref().is_some_and(|c| c.captured == 0) {
        reasons.push(format!(
            "nothing captured yet under {}: the ModelDeployment captures requests once its spec.capture is set",
            args.capture.as_deref().unwrap_or_default()
        ));
    } else if let Some(c) = captured.as_ref().filter(|c| c.labelled == 0) {
        reasons.push(format!(
            "no captured row has a label yet ({} rows captured in {} files, {} label files): send labels to /v2/models/<name>/feedback",
            c.captured, c.request_files, c.label_files
        ));
    } else if manifest.files.is_empty() {
        reasons.push(format!(
            "no files under {} (after include and exclude): the dataset is empty",
            args.source
        ));
    }
    reasons.extend(outcome.failures);

    let mut drift = Vec::new();
    if let (Some(limit), Some(baseline)) = (&checks.drift, &args.baseline)
        && baseline != &id
    {
        match store
            .read_json::<ciclo_profile::Profile>(baseline, report::PROFILE)
            .await?
        {
            Some(base) => drift = ciclo_profile::drift(limit, &base, &outcome.profile),
            None => {
                tracing::warn!(%baseline, "the baseline's profile is missing: drift not checked")
            }
        }
        for d in drift.iter().filter(|d| d.exceeded) {
            reasons.push(format!(
                "column {:?}: drift {:?} {:.4} over the limit {} against version {baseline}",
                d.column, d.measure, d.distance, d.max_distance
            ));
        }
    }

    let report = Report {
        id: id.clone(),
        created: jiff::Timestamp::now().to_string(),
        source: args.source.clone(),
        verdict: if reasons.is_empty() {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        },
        reasons,
        files: manifest.files.len() as u64,
        bytes: manifest.total_bytes(),
        rows: outcome.profile.rows,
        hashed,
        reused,
        checks: checks.digest.clone(),
        baseline: args.baseline.clone().filter(|b| b != &id),
        drift,
        captured,
    };
    // The report goes last: a version directory with a report is complete.
    store.write_json(&id, report::MANIFEST, &manifest).await?;
    store
        .write_json(&id, report::PROFILE, &outcome.profile)
        .await?;
    store.write_json(&id, report::REPORT, &report).await?;
    Ok(report.summary(store.location(&id)))
}

/// Joins the capture at `uri` (read with the artifact store's settings and credentials) into
/// one file under `prefix` of `data`.
async fn join_capture(
    uri: &str,
    args: &CheckArgs,
    data: &dyn ObjectStore,
    prefix: &Path,
) -> Result<crate::captured::Joined, Failed> {
    let (capture, at) = source::open(uri, &args.artifacts_options()).map_err(|e| {
        (
            FailureReason::ArtifactStoreUnavailable,
            format!("the capture: {e}"),
        )
    })?;
    let joined = crate::captured::join(capture, &at, data, prefix)
        .await
        .map_err(|e| match e {
            crate::captured::Error::Store(e) => (
                FailureReason::SourceUnavailable,
                format!("the capture {uri}: {e}"),
            ),
            e => (FailureReason::SourceUnavailable, format!("{uri}: {e}")),
        })?;
    tracing::info!(
        captured = joined.rows.captured,
        labelled = joined.rows.labelled,
        file = joined.file.as_deref().unwrap_or("none"),
        "joined the capture with its labels"
    );
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser as _};

    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        args: CheckArgs,
    }

    const STORES: [&str; 5] = [
        "snapshot",
        "--source",
        "file:///data",
        "--artifacts",
        "file:///artifacts",
    ];

    #[test]
    fn sharding_flags_parse_and_the_index_defaults_to_the_indexed_jobs() {
        let flags = [
            "--shards",
            "3",
            "--shard-index",
            "2",
            "--shard-dir",
            "check-7",
            "--shard-wait",
            "90m",
        ];
        let sharded = Command::try_parse_from(STORES.iter().chain(&flags))
            .unwrap()
            .args;
        assert_eq!(
            (
                sharded.shards,
                sharded.shard_index,
                sharded.shard_dir.as_deref()
            ),
            (3, Some(2), Some("check-7"))
        );
        assert_eq!(
            sharded.shard_wait,
            Some(jiff::SignedDuration::from_secs(90 * 60))
        );
        assert_eq!(Command::try_parse_from(STORES).unwrap().args.shards, 1);
        let command = Command::command();
        let index = command
            .get_arguments()
            .find(|a| a.get_id() == "shard_index")
            .unwrap();
        assert_eq!(
            index.get_env(),
            Some(std::ffi::OsStr::new("JOB_COMPLETION_INDEX"))
        );
    }
}

//! One training run, as a pipeline of steps each of which can only fail with its own reason:
//! settings → stores → manifest → verified files → table → split → fit → metrics → output.
//! Only the ends touch a store; the middle is plain computation on the blocking pool.

use crate::args::{Settings, TrainArgs};
use crate::failure::Failed;
use crate::fit::{self, Header};
use crate::output::Output;
use crate::prepare::{Labels, Prepared, prepare};
use crate::table::{self, File, Table};
use crate::{fetch, metrics, parse, split};
use ciclo_core::contract::{ARTIFACTS_ENV_PREFIX, SOURCE_ENV_PREFIX};
use ciclo_core::train_result::{MetricsFile, RowCounts, SplitInfo, TrainOutcome, TrainSummary};
use ciclo_model::Model;
use ciclo_model::{Prediction, classify, predict};
use ciclo_profile::Format;
use ciclo_snapshot::Manifest;
use ciclo_store::{self as source, Options};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::ObjectStore;
use object_store::path::Path;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Files fetched, verified and parsed at once: enough to keep a remote store busy, few
/// enough to bound the memory of whole files in flight.
const PARALLEL_FILES: usize = 4;

/// Trains as `args` say; every way it can go is in the summary, never a panic.
pub async fn run(args: &TrainArgs) -> TrainSummary {
    match train(args).await {
        Ok(summary) => summary,
        Err(failed) => {
            tracing::warn!(reason = ?failed.reason, message = %failed.message, "training failed");
            TrainSummary::failed(failed.reason, failed.message)
        }
    }
}

async fn train(args: &TrainArgs) -> Result<TrainSummary, Failed> {
    let settings = Settings::parse(args)?;
    let (data, data_prefix) = open(&args.dataset, SOURCE_ENV_PREFIX)
        .map_err(|e| Failed::unavailable(format!("the dataset: {e}")))?;
    let (artifacts, manifest_path) = open(&args.manifest, ARTIFACTS_ENV_PREFIX)
        .map_err(|e| Failed::unavailable(format!("the manifest: {e}")))?;
    // Opened before the work, so a bad output URI fails in a second, not after the training.
    let (out_store, out_prefix) = open(&args.output, ARTIFACTS_ENV_PREFIX)
        .map_err(|e| Failed::output(format!("the output: {e}")))?;
    let output = Output {
        store: out_store,
        prefix: out_prefix,
        uri: args.output.trim_end_matches('/').to_string(),
    };

    let manifest = fetch::manifest(
        artifacts.as_ref(),
        &manifest_path,
        &args.manifest,
        &args.version,
    )
    .await?;
    tracing::info!(version = %args.version, files = manifest.files.len(), bytes = manifest.total_bytes(), "reading the version");
    let files = read(
        data,
        &data_prefix,
        &manifest,
        &args.version,
        settings.format,
    )
    .await?;

    let spec = settings.spec.clone();
    let params = settings.params.clone();
    let version = args.version.clone();
    let (dropped, skipped, prepared, model) = blocking(move || {
        let table = table::build(&files, &spec)?;
        // The parsed files, then the table, are dropped as soon as they are copied on: a
        // version is in memory about twice at the peak, not three times.
        drop(files);
        let prepared = prepare(&table, params.seed, spec.test_fraction)?;
        let Table {
            features,
            dropped,
            skipped,
            ..
        } = table;
        tracing::info!(
            train = prepared.train.rows(),
            validation = prepared.validation.rows(),
            dropped,
            ?features,
            "fitting"
        );
        let model = fit::fit(
            &prepared,
            &Header {
                algorithm: spec.algorithm,
                target: &spec.target,
                features: &features,
                params: &params,
                dataset_version: &version,
            },
        )?;
        Ok((dropped, skipped, prepared, model))
    })
    .await?;
    let metrics = evaluate(&model, &prepared)?;
    tracing::info!(?metrics, "validated");

    let rows = RowCounts {
        train: prepared.train.rows() as u64,
        validation: prepared.validation.rows() as u64,
        dropped,
    };
    let model_bytes = model.to_json();
    let digest = format!("blake3:{}", blake3::hash(&model_bytes).to_hex());
    let metrics_bytes = metrics_file(&settings, skipped, rows, &metrics, &args.version);
    let model_uri = output.write(model_bytes, metrics_bytes).await?;
    tracing::info!(model = %model_uri, %digest, "written");
    Ok(TrainSummary {
        outcome: TrainOutcome::Succeeded,
        metrics,
        model: Some(model_uri),
        digest: Some(digest),
        rows,
        failure: None,
    })
}

fn open(uri: &str, env_prefix: &str) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let options = Options {
        env_prefix: env_prefix.into(),
        ..Options::default()
    };
    source::open(uri, &options).map_err(|e| {
        format!("{e} (its settings and credentials come from {env_prefix}* variables)")
    })
}

/// Fetches, verifies and parses every file of the manifest, in manifest order.
async fn read(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    manifest: &Manifest,
    version: &str,
    format: Option<Format>,
) -> Result<Vec<File>, Failed> {
    if manifest.files.is_empty() {
        return Err(Failed::training(format!("version {version} has no files")));
    }
    futures::stream::iter(&manifest.files)
        .map(|entry| {
            let store = store.clone();
            async move {
                let path = entry.path.clone();
                let format = format.or_else(|| Format::from_path(&path)).ok_or_else(|| {
                    Failed::invalid(format!(
                        "file {path}: no format (csv, parquet, jsonl) by its extension; set the dataset's format"
                    ))
                })?;
                let bytes = fetch::verified(store.as_ref(), prefix, entry, version).await?;
                blocking(move || {
                    let batches =
                        parse::batches(&path, format, bytes).map_err(Failed::training)?;
                    Ok(File { path, batches })
                })
                .await
            }
        })
        // `buffered` keeps the manifest's order: the rows' global indices depend on it.
        .buffered(PARALLEL_FILES)
        .try_collect()
        .await
}

/// Runs CPU work off the async threads; a panic in it is a failed training, not a crash.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failed> + Send + 'static,
) -> Result<T, Failed> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failed::training(format!("the training stopped: {e}")))?
}

/// The metrics of the model file's own predictions on the validation rows.
fn evaluate(model: &Model, prepared: &Prepared) -> Result<BTreeMap<String, f64>, Failed> {
    let rows = prepared.validation.row_vecs();
    let mut metrics = match &prepared.validation.y {
        Labels::Numbers(truth) => {
            let predicted: Vec<f64> = predict(model, &rows)
                .map_err(Failed::training)?
                .into_iter()
                .map(|p| match p {
                    Prediction::Value(v) => v,
                    Prediction::Class { .. } => unreachable!("a regression predicts values"),
                })
                .collect();
            metrics::regression(truth.as_slice().expect("contiguous"), &predicted)
        }
        Labels::Classes(truth) => {
            model.check().map_err(Failed::training)?;
            let (predicted, probabilities): (Vec<usize>, Vec<Vec<f64>>) =
                rows.iter().map(|r| classify(model, r)).unzip();
            metrics::classification(
                truth.as_slice().expect("contiguous"),
                &predicted,
                &probabilities,
                model.classes.len(),
            )
        }
    };
    // JSON has no NaN or infinity (a diverged fit could give them).
    metrics.retain(|_, v| v.is_finite());
    Ok(metrics)
}

fn metrics_file(
    settings: &Settings,
    skipped: Vec<String>,
    rows: RowCounts,
    metrics: &BTreeMap<String, f64>,
    version: &str,
) -> Vec<u8> {
    let algorithm = settings.spec.algorithm;
    let file = MetricsFile {
        metrics: metrics.clone(),
        rows: Some(rows),
        split: Some(SplitInfo {
            test_fraction: settings.spec.test_fraction,
            seed: settings.params.seed,
            method: split::METHOD.into(),
        }),
        dataset_version: Some(version.into()),
        algorithm: Some(format!("{algorithm:?}")),
        params: settings.params.effective(algorithm),
        ignored_params: settings.params.ignored.clone(),
        skipped_columns: skipped,
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("metrics serialize");
    bytes.push(b'\n');
    bytes
}

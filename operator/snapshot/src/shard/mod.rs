//! A check split over several workers (`--shards N`), the pods of an Indexed Job.
//!
//! Every worker lists the source and splits the files, in manifest order, into N contiguous
//! ranges balanced by bytes ([`split`]); worker `i` hashes and profiles range `i`. Workers
//! 1 to N-1 hand their share to worker 0 through the artifact store ([`handoff`]); worker 0
//! does its own, waits for theirs, builds the whole manifest, and from there concludes as a
//! single worker does ([`crate::check::conclude`]): the same version id, verdict, reasons
//! and files written.
//!
//! When the previous version's manifest vouches for every listed file under the same checks,
//! every worker answers `Unchanged` at once, reading no file. When the workers did not list
//! the same files (the source changed meanwhile), worker 0 fails: the next check runs again.

mod handoff;
mod split;

use crate::artifacts::Failed;
use crate::check::{self, CheckArgs, Ready, Version};
use crate::manifest::Manifest;
use crate::report;
use crate::snapshot::{self, Listed};
use crate::source;
use ciclo_core::snapshot_result::{FailureReason, Outcome, SnapshotSummary};
use handoff::{Folder, Share};
use std::time::Duration;

/// How long worker 0 waits for the others' shares unless told otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(6 * 3600);

/// This worker's place in a sharded check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sharding {
    shards: usize,
    index: usize,
    /// The hand-off folder's name, under `<artifacts>/shards/`.
    dir: String,
    wait: Duration,
}

impl Sharding {
    /// The sharding the flags ask for; `None` for a single worker.
    pub fn parse(args: &CheckArgs) -> Result<Option<Self>, String> {
        let shards = args.shards;
        if shards <= 1 {
            return Ok(None);
        }
        if args.capture.is_some() {
            return Err(format!(
                "--shards {shards} with --capture: a capture is checked by one worker (it joins into one file); leave out --shards"
            ));
        }
        let index = args.shard_index.ok_or_else(|| {
            format!(
                "--shards {shards} needs --shard-index (an Indexed Job sets JOB_COMPLETION_INDEX)"
            )
        })?;
        if index >= shards {
            return Err(format!(
                "--shard-index {index} is out of range for --shards {shards} (0 to {})",
                shards - 1
            ));
        }
        let dir = args.shard_dir.clone().unwrap_or_default();
        if dir.is_empty() {
            return Err(format!(
                "--shards {shards} needs --shard-dir: the folder under <artifacts>/shards/ the workers hand their shares in (the Job's name)"
            ));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !dir.chars().all(allowed) || dir.chars().all(|c| c == '.') {
            return Err(format!(
                "--shard-dir {dir:?}: expected one folder name (letters, digits, '-', '_', '.')"
            ));
        }
        let wait = match args.shard_wait {
            Some(d) => Duration::try_from(d).map_err(|_| {
                format!("--shard-wait {d}: expected a duration that is not negative")
            })?,
            None => DEFAULT_WAIT,
        };
        Ok(Some(Sharding {
            shards,
            index,
            dir,
            wait,
        }))
    }
}

/// Runs this worker's part of a sharded check.
pub(crate) async fn run(ready: &Ready<'_>, sharding: &Sharding) -> Result<SnapshotSummary, Failed> {
    let Ready {
        args,
        checks,
        data,
        prefix,
        store,
    } = ready;
    let previous: Option<Manifest> = match &args.previous {
        Some(id) => store.read_json(id, report::MANIFEST).await?,
        None => None,
    };
    let listed = snapshot::list(data.as_ref(), prefix, &checks.selection)
        .await
        .map_err(source_unavailable)?;
    if let (Some(id), Some(manifest)) = (&args.previous, &previous)
        && manifest.version_id() == *id
        && snapshot::vouches(manifest, &listed)
        && let Some(unchanged) = check::unchanged(ready, id).await?
    {
        tracing::info!(%id, shard = sharding.index, "the previous version vouches for every file");
        return Ok(unchanged);
    }

    let sizes: Vec<u64> = listed.iter().map(|l| l.meta.size).collect();
    let ranges = split::split(&sizes, sharding.shards);
    let mine = ranges[sharding.index].clone();
    // Each phase is logged (with the log line's own time) so a check's time can be split
    // between listing, hashing, the hand-over and the merge from outside.
    tracing::info!(
        shard = sharding.index,
        files = listed.len(),
        bytes = sizes.iter().sum::<u64>(),
        share_files = mine.len(),
        share_bytes = sizes[mine.clone()].iter().sum::<u64>(),
        "listed the source"
    );
    let digest = handoff::listing_digest(&listed);
    let share = share(
        ready,
        &listed[mine.clone()],
        mine.start,
        previous.as_ref(),
        digest,
        sharding,
    )
    .await?;
    tracing::info!(
        shard = sharding.index,
        files = share.entries.len(),
        hashed = share.hashed,
        reused = share.reused,
        "hashed and profiled this share"
    );
    let folder = Folder::new(store, &sharding.dir);
    if sharding.index > 0 {
        folder.put(&share).await?;
        tracing::info!(shard = sharding.index, "handed this share to worker 0");
        return Ok(SnapshotSummary {
            outcome: Outcome::Part,
            id: None,
            files: share.entries.len() as u64,
            bytes: share.entries.iter().map(|e| e.size).sum(),
            rows: share.partial.rows(),
            reasons: Vec::new(),
            failure: None,
            location: Some(folder.location(sharding.index)),
            captured: None,
        });
    }
    tracing::info!(
        workers = sharding.shards - 1,
        "waiting for the other workers' shares"
    );
    let waiting = std::time::Instant::now();
    let others = folder.collect(sharding.shards, sharding.wait).await?;
    tracing::info!(
        shares = others.len(),
        waited = ?waiting.elapsed(),
        "all the other workers' shares are in"
    );
    let merged = merge(ready, &listed, &ranges, share, others).await;
    // Whatever came of them, the shares have served.
    folder.remove().await;
    merged
}

/// Hashes and profiles `listed`, the files of this worker's range, which starts at file
/// `first` of the whole listing.
async fn share(
    ready: &Ready<'_>,
    listed: &[Listed],
    first: usize,
    previous: Option<&Manifest>,
    listing: String,
    sharding: &Sharding,
) -> Result<Share, Failed> {
    let Ready {
        args, checks, data, ..
    } = ready;
    let snap = snapshot::hash(
        data.clone(),
        listed.to_vec(),
        previous,
        source::reads_for(&args.source),
    )
    .await
    .map_err(source_unavailable)?;
    let partial = ciclo_profile::profile_part(
        data.clone(),
        check::inputs(&snap.manifest, &snap.locations),
        first,
        checks.format,
        checks.expectations.as_ref(),
    )
    .await
    .map_err(|e| (FailureReason::SourceUnavailable, e.to_string()))?;
    Ok(Share {
        shard: sharding.index,
        shards: sharding.shards,
        listing,
        checks: checks.digest.clone(),
        entries: snap.manifest.files,
        hashed: snap.hashed as u64,
        reused: snap.reused as u64,
        partial,
    })
}

/// Worker 0: the shares of all workers made into the version, then concluded as one worker
/// would.
async fn merge(
    ready: &Ready<'_>,
    listed: &[Listed],
    ranges: &[std::ops::Range<usize>],
    own: Share,
    others: Vec<Share>,
) -> Result<SnapshotSummary, Failed> {
    let failed = |m: String| (FailureReason::CheckFailed, m);
    let mut shares = vec![own];
    shares.extend(others);
    let ours = shares[0].listing.clone();
    for (i, share) in shares.iter().enumerate() {
        if share.listing != ours {
            return Err((
                FailureReason::SourceUnavailable,
                format!(
                    "the source changed while the workers listed it: worker {i} saw other files than worker 0 (the next check runs again)"
                ),
            ));
        }
        if share.checks != ready.checks.digest || share.shard != i || share.shards != shares.len() {
            return Err(failed(format!(
                "the share of worker {i} is of another check (worker {} of {}, checks {})",
                share.shard, share.shards, share.checks
            )));
        }
        let expected = listed[ranges[i].clone()].iter().map(|l| &l.relative);
        if !share.entries.iter().map(|e| &e.path).eq(expected) {
            return Err(failed(format!(
                "the share of worker {i} has other files than its range of the listing"
            )));
        }
    }
    let (mut entries, mut partials) = (Vec::new(), Vec::new());
    let (mut hashed, mut reused) = (0, 0);
    for share in shares {
        entries.extend(share.entries);
        partials.push(share.partial);
        hashed += share.hashed;
        reused += share.reused;
    }
    let manifest = Manifest::new(entries);
    let id = manifest.version_id();
    tracing::info!(%id, files = manifest.files.len(), hashed, reused, "merged the shares' manifests");
    if let Some(unchanged) = check::unchanged(ready, &id).await? {
        return Ok(unchanged);
    }
    let locations: Vec<_> = listed.iter().map(|l| l.meta.location.clone()).collect();
    let outcome = ciclo_profile::merge(
        partials,
        &check::inputs(&manifest, &locations),
        ready.checks.format,
        ready.checks.expectations.as_ref(),
    )
    .map_err(|e| failed(e.to_string()))?;
    let version = Version {
        id,
        manifest,
        hashed,
        reused,
        captured: None,
    };
    check::conclude(ready, version, outcome).await
}

fn source_unavailable(e: snapshot::Error) -> Failed {
    (FailureReason::SourceUnavailable, e.to_string())
}

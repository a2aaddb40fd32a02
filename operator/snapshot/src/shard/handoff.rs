//! What a worker of a sharded check hands to worker 0, and how worker 0 collects it: one
//! JSON file per worker, `<artifacts>/shards/<name>/<index>.json`, written whole once the
//! worker's share is hashed and profiled.

use crate::artifacts::{Failed, Store};
use crate::manifest::FileEntry;
use crate::snapshot::Listed;
use ciclo_core::snapshot_result::FailureReason;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often worker 0 looks for the shares it still waits for.
const POLL: Duration = Duration::from_secs(1);

/// One worker's share of a sharded check.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Share {
    /// The worker's index, and how many workers there are.
    pub shard: usize,
    pub shards: usize,
    /// The digest of the whole listing as this worker saw it (see [`listing_digest`]): the
    /// shares fit together only if every worker saw the same files.
    pub listing: String,
    /// The digest of the checks the share was made under.
    pub checks: String,
    /// The manifest entries of its files.
    pub entries: Vec<FileEntry>,
    /// Its files read and hashed, and those whose hash came from the previous manifest.
    pub hashed: u64,
    pub reused: u64,
    /// The profile of its files, not yet finished.
    pub partial: ciclo_profile::Partial,
}

/// BLAKE3 over every listed file's path, size, ETag and modification time: equal on two
/// workers when they listed the same, unchanged files.
pub(crate) fn listing_digest(listed: &[Listed]) -> String {
    let mut hasher = blake3::Hasher::new();
    for l in listed {
        let line = format!(
            "{}\t{}\t{}\t{}\n",
            l.relative,
            l.meta.size,
            l.etag().unwrap_or_default(),
            l.last_modified()
        );
        hasher.update(line.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// The hand-off folder of one sharded check.
pub(crate) struct Folder<'a> {
    store: &'a Store,
    path: Path,
}

impl<'a> Folder<'a> {
    /// `<artifacts>/shards/<name>/`.
    pub fn new(store: &'a Store, name: &str) -> Self {
        let path = store.root.clone().join("shards").join(name);
        Folder { store, path }
    }

    fn file(&self, shard: usize) -> Path {
        self.path.clone().join(format!("{shard}.json"))
    }

    /// Where worker `shard`'s share is, as a URI.
    pub fn location(&self, shard: usize) -> String {
        self.uri(&self.file(shard))
    }

    fn uri(&self, path: &Path) -> String {
        let relative: Vec<String> = path
            .prefix_match(&self.store.root)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
            .unwrap_or_default();
        format!("{}/{}", self.store.uri, relative.join("/"))
    }

    /// Hands a share over.
    pub async fn put(&self, share: &Share) -> Result<(), Failed> {
        let body = serde_json::to_vec(share).expect("shares serialize");
        self.store.write_bytes(&self.file(share.shard), body).await
    }

    /// The shares of workers 1 to `shards - 1`, in order, once all are there. Looks every
    /// [`POLL`]; after `wait`, fails naming the workers whose shares never came.
    pub async fn collect(&self, shards: usize, wait: Duration) -> Result<Vec<Share>, Failed> {
        let started = Instant::now();
        let mut shares: BTreeMap<usize, Share> = BTreeMap::new();
        loop {
            let present = self.store.list(&self.path).await?;
            for shard in 1..shards {
                if shares.contains_key(&shard) || !present.contains(&self.file(shard)) {
                    continue;
                }
                let Some(bytes) = self.store.read_bytes(&self.file(shard)).await? else {
                    continue;
                };
                let share: Share = serde_json::from_slice(&bytes).map_err(|e| {
                    (
                        FailureReason::CheckFailed,
                        format!("{}: not a share of this check: {e}", self.location(shard)),
                    )
                })?;
                shares.insert(shard, share);
            }
            if shares.len() == shards - 1 {
                return Ok(shares.into_values().collect());
            }
            if started.elapsed() >= wait {
                let missing: Vec<String> = (1..shards)
                    .filter(|s| !shares.contains_key(s))
                    .map(|s| s.to_string())
                    .collect();
                return Err((
                    FailureReason::CheckFailed,
                    format!(
                        "waited {}s for the shares of workers {} (under {}); they never came: those workers failed or are still running (raise --shard-wait)",
                        wait.as_secs(),
                        missing.join(", "),
                        self.uri(&self.path),
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Deletes the folder's files: once the report is written, or the shares are of no use.
    pub async fn remove(&self) {
        if let Err((_, e)) = self.store.delete_all(&self.path).await {
            tracing::warn!(folder = %self.path, error = %e, "the shares of this check stay behind");
        }
    }
}

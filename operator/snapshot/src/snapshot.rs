//! Listing and hashing a source into a manifest.

use crate::manifest::{FileEntry, Manifest};
use crate::select::Selection;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};
use std::sync::Arc;

/// Files hashed at once: enough to keep a remote store busy, few enough to bound memory
/// (each holds at most one block in flight).
const PARALLEL_FILES: usize = 4;
/// Read size for local files: large enough that the per-read cost is negligible next to
/// hashing, small enough to stay in cache between the read and the hash. One buffer per file
/// being hashed, reused for every read: no allocation or page fault per block.
const BLOCK: usize = 1024 * 1024;

/// Why a listing or its hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source could not be listed or read.
    #[error("the source cannot be read: {0}")]
    Source(#[from] object_store::Error),
    /// A hashing task panicked or was cancelled.
    #[error("hashing stopped unexpectedly: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A snapshot's manifest, and how much it had to read to make it.
#[derive(Debug)]
pub struct Snapshot {
    /// The files' paths, sizes and hashes, sorted by path.
    pub manifest: Manifest,
    /// Files whose content was read and hashed.
    pub hashed: usize,
    /// Files whose hash came from the previous manifest (same size and ETag or time).
    pub reused: usize,
    /// Where each selected file is in the store, in manifest order.
    pub locations: Vec<Path>,
}

/// How the content of an object is read for hashing.
#[derive(Debug, Clone)]
pub enum Reads {
    /// One streaming GET per object (object stores over HTTP).
    Stream,
    /// Direct reads into one reused buffer (the local file system, whose object_store
    /// stream reads 8 KiB at a time into a new allocation each); the store maps its paths to
    /// files.
    Local(Arc<object_store::local::LocalFileSystem>),
}

/// One selected file of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its path relative to the prefix, `/`-separated.
    pub relative: String,
    /// What the listing said of it: where it is, its size, ETag and modification time.
    pub meta: ObjectMeta,
}

impl Listed {
    /// The store's ETag, if it gave one.
    pub fn etag(&self) -> Option<String> {
        self.meta.e_tag.clone()
    }

    /// The modification time (RFC 3339), as manifests keep it.
    pub fn last_modified(&self) -> String {
        self.meta.last_modified.to_rfc3339()
    }

    /// The `previous` manifest's entry for this file if it vouches for it: the same size and
    /// ETag, or the same time when it has no ETag.
    pub fn unchanged_in<'m>(&self, previous: &'m Manifest) -> Option<&'m FileEntry> {
        previous.get(&self.relative).filter(|old| {
            old.size == self.meta.size
                && match &old.etag {
                    Some(etag) => self.meta.e_tag.as_ref() == Some(etag),
                    None => old.last_modified.as_deref() == Some(&self.last_modified()),
                }
        })
    }
}

/// Lists `prefix` in `store` and keeps what `selection` selects, sorted by relative path
/// (manifest order).
pub async fn list(
    store: &dyn ObjectStore,
    prefix: &Path,
    selection: &Selection,
) -> Result<Vec<Listed>, Error> {
    let objects: Vec<ObjectMeta> = store.list(Some(prefix)).try_collect().await?;
    let mut listed: Vec<Listed> = objects
        .into_iter()
        .map(|meta| Listed {
            relative: relative_path(prefix, &meta.location),
            meta,
        })
        .filter(|l| selection.selects(&l.relative))
        .collect();
    listed.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(listed)
}

/// Whether `previous` vouches for the whole listing: the same files, none changed.
pub fn vouches(previous: &Manifest, listed: &[Listed]) -> bool {
    previous.files.len() == listed.len()
        && listed.iter().all(|l| l.unchanged_in(previous).is_some())
}

/// Lists `prefix` in `store`, keeps what `selection` selects, and hashes every file the
/// `previous` manifest cannot vouch for.
pub async fn snapshot(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    selection: &Selection,
    previous: Option<&Manifest>,
    reads: Reads,
) -> Result<Snapshot, Error> {
    let listed = list(store.as_ref(), prefix, selection).await?;
    hash(store, listed, previous, reads).await
}

/// Hashes the `listed` files the `previous` manifest cannot vouch for, and takes the hashes
/// of the others from it.
pub async fn hash(
    store: Arc<dyn ObjectStore>,
    listed: Vec<Listed>,
    previous: Option<&Manifest>,
    reads: Reads,
) -> Result<Snapshot, Error> {
    let mut entries = Vec::new();
    let mut to_hash = Vec::new();
    let mut locations = std::collections::HashMap::new();
    for file in listed {
        locations.insert(file.relative.clone(), file.meta.location.clone());
        let (etag, last_modified) = (file.etag(), Some(file.last_modified()));
        match previous.and_then(|p| file.unchanged_in(p)) {
            Some(old) => entries.push(FileEntry {
                etag,
                last_modified,
                ..old.clone()
            }),
            None => to_hash.push((file.relative, file.meta, etag, last_modified)),
        }
    }
    let (hashed, reused) = (to_hash.len(), entries.len());
    // Fewer files than cores: split each file over threads too, or some cores would idle.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let split = hashed < cores;
    // Each file is its own task so the runtime spreads the hashing over every core.
    let mut tasks = futures::stream::iter(to_hash)
        .map(|(relative, meta, etag, last_modified)| {
            let (store, reads) = (store.clone(), reads.clone());
            tokio::spawn(async move {
                let blake3 = hash_object(store.as_ref(), &meta, reads, split).await?;
                Ok::<_, Error>(FileEntry {
                    path: relative,
                    size: meta.size,
                    blake3,
                    etag,
                    last_modified,
                })
            })
        })
        .buffer_unordered(PARALLEL_FILES);
    while let Some(done) = tasks.next().await {
        entries.push(done??);
    }
    let manifest = Manifest::new(entries);
    let locations = manifest
        .files
        .iter()
        .map(|f| locations.remove(&f.path).expect("every entry was listed"))
        .collect();
    Ok(Snapshot {
        manifest,
        hashed,
        reused,
        locations,
    })
}

/// Reads one object through BLAKE3; the hashing itself runs off the async threads, and with
/// `split` over several threads at once (as b3sum does for every file).
async fn hash_object(
    store: &dyn ObjectStore,
    meta: &ObjectMeta,
    reads: Reads,
    split: bool,
) -> Result<String, Error> {
    let mut hasher = blake3::Hasher::new();
    match reads {
        Reads::Local(files) => {
            let path = files.path_to_filesystem(&meta.location)?;
            hasher = tokio::task::spawn_blocking(move || {
                use std::io::Read as _;
                let unreadable = |e: std::io::Error| object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("{}: {e}", path.display()).into(),
                };
                let mut file = std::fs::File::open(&path).map_err(unreadable)?;
                let mut buf = vec![0u8; BLOCK];
                loop {
                    let n = file.read(&mut buf).map_err(unreadable)?;
                    if n == 0 {
                        return Ok::<_, object_store::Error>(hasher);
                    }
                    if split {
                        hasher.update_rayon(&buf[..n]);
                    } else {
                        hasher.update(&buf[..n]);
                    }
                }
            })
            .await??;
        }
        Reads::Stream => {
            let mut stream = store.get(&meta.location).await?.into_stream();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk?);
            }
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

fn relative_path(prefix: &Path, location: &Path) -> String {
    match location.prefix_match(prefix) {
        Some(parts) => parts
            .map(|p| p.as_ref().to_string())
            .collect::<Vec<_>>()
            .join("/"),
        None => location.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    fn write(dir: &std::path::Path, rel: &str, content: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    async fn snap(dir: &std::path::Path, previous: Option<&Manifest>) -> Snapshot {
        let store = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
        let all = Selection::new(&["**/*.csv".into()], &[]).unwrap();
        let local = snapshot(
            store.clone(),
            &Path::from("data"),
            &all,
            previous,
            Reads::Local(store.clone()),
        )
        .await
        .unwrap();
        let stream = snapshot(store, &Path::from("data"), &all, previous, Reads::Stream)
            .await
            .unwrap();
        assert_eq!(
            local.manifest, stream.manifest,
            "both ways of reading agree"
        );
        local
    }

    #[tokio::test]
    async fn the_same_data_gets_the_same_id_and_new_data_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "data/a.csv", "x,y\n1,2\n");
        write(dir.path(), "data/sub/b.csv", "x,y\n3,4\n");
        write(dir.path(), "data/readme.txt", "not selected");
        let first = snap(dir.path(), None).await;
        assert_eq!(
            first
                .manifest
                .files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>(),
            vec!["a.csv", "sub/b.csv"]
        );
        assert_eq!(
            first.manifest.files[0].blake3,
            blake3::hash(b"x,y\n1,2\n").to_hex().to_string()
        );
        assert_eq!(
            snap(dir.path(), None).await.manifest.version_id(),
            first.manifest.version_id()
        );
        write(dir.path(), "data/c.csv", "x,y\n5,6\n");
        assert_ne!(
            snap(dir.path(), None).await.manifest.version_id(),
            first.manifest.version_id()
        );
    }

    #[tokio::test]
    async fn an_unchanged_re_snapshot_reads_no_content() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "data/a.csv", "x\n1\n");
        write(dir.path(), "data/b.csv", "x\n2\n");
        let first = snap(dir.path(), None).await;
        assert_eq!((first.hashed, first.reused), (2, 0));
        let again = snap(dir.path(), Some(&first.manifest)).await;
        assert_eq!((again.hashed, again.reused), (0, 2));
        assert_eq!(again.manifest.version_id(), first.manifest.version_id());
        // A changed file is read again, the other is not.
        write(dir.path(), "data/b.csv", "x\n22\n");
        let changed = snap(dir.path(), Some(&first.manifest)).await;
        assert_eq!((changed.hashed, changed.reused), (1, 1));
        assert_ne!(changed.manifest.version_id(), first.manifest.version_id());
    }

    #[tokio::test]
    async fn files_larger_than_a_block_hash_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        // Not a multiple of the block size, so the last read is short.
        let content: Vec<u8> = (0..(2 * BLOCK as u64 + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/big.csv"), &content).unwrap();
        let snap = snap(dir.path(), None).await;
        assert_eq!(
            snap.manifest.files[0].blake3,
            blake3::hash(&content).to_hex().to_string()
        );
        assert_eq!(snap.locations, vec![Path::from("data/big.csv")]);
    }
}

//! Listing and hashing a source into a manifest.

use crate::manifest::{FileEntry, Manifest};
use crate::select::Selection;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};

/// Files hashed at once: enough to keep a store busy, few enough to bound memory (each
/// holds at most one chunk of the object in flight).
const PARALLEL_FILES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the source cannot be read: {0}")]
    Source(#[from] object_store::Error),
}

/// A snapshot's manifest, and how much it had to read to make it.
#[derive(Debug)]
pub struct Snapshot {
    pub manifest: Manifest,
    /// Files whose content was read and hashed.
    pub hashed: usize,
    /// Files whose hash came from the previous manifest (same size and ETag or time).
    pub reused: usize,
}

/// Lists `prefix` in `store`, keeps what `selection` selects, and hashes every file the
/// `previous` manifest cannot vouch for.
pub async fn snapshot(
    store: &dyn ObjectStore,
    prefix: &Path,
    selection: &Selection,
    previous: Option<&Manifest>,
) -> Result<Snapshot, Error> {
    let objects: Vec<ObjectMeta> = store.list(Some(prefix)).try_collect().await?;
    let mut reused = Vec::new();
    let mut to_hash = Vec::new();
    for meta in objects {
        let relative = relative_path(prefix, &meta.location);
        if !selection.selects(&relative) {
            continue;
        }
        let etag = meta.e_tag.clone();
        let last_modified = Some(meta.last_modified.to_rfc3339());
        let unchanged = previous.and_then(|p| p.get(&relative)).filter(|old| {
            old.size == meta.size
                && (old.etag.is_some() && old.etag == etag
                    || old.etag.is_none() && old.last_modified == last_modified)
        });
        match unchanged {
            Some(old) => reused.push(FileEntry {
                etag,
                last_modified,
                ..old.clone()
            }),
            None => to_hash.push((relative, meta, etag, last_modified)),
        }
    }
    let hashed_count = to_hash.len();
    let hashed: Vec<FileEntry> = futures::stream::iter(to_hash)
        .map(|(relative, meta, etag, last_modified)| async move {
            let blake3 = hash_object(store, &meta.location).await?;
            Ok::<_, Error>(FileEntry {
                path: relative,
                size: meta.size,
                blake3,
                etag,
                last_modified,
            })
        })
        .buffer_unordered(PARALLEL_FILES)
        .try_collect()
        .await?;
    let reused_count = reused.len();
    Ok(Snapshot {
        manifest: Manifest::new(reused.into_iter().chain(hashed).collect()),
        hashed: hashed_count,
        reused: reused_count,
    })
}

/// Streams one object through BLAKE3.
async fn hash_object(store: &dyn ObjectStore, location: &Path) -> Result<String, Error> {
    let mut stream = store.get(location).await?.into_stream();
    let mut hasher = blake3::Hasher::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
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
        let store = LocalFileSystem::new_with_prefix(dir).unwrap();
        let all = Selection::new(&["**/*.csv".into()], &[]).unwrap();
        snapshot(&store, &Path::from("data"), &all, previous)
            .await
            .unwrap()
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
}

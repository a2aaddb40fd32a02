//! Reading one dataset version, not whatever the source holds now: the manifest names the
//! files, and each file's bytes must hash to the BLAKE3 the manifest records before anything
//! is parsed from them. A source overwritten since the snapshot is `DatasetChanged`, never a
//! model silently trained on other data.

use crate::failure::Failed;
use bytes::Bytes;
use ciclo_snapshot::{FileEntry, Manifest};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};

/// Reads the manifest at `uri` and checks it is the one of `version`.
pub(crate) async fn manifest(
    store: &dyn ObjectStore,
    location: &Path,
    uri: &str,
    version: &str,
) -> Result<Manifest, Failed> {
    let bytes = match store.get(location).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    }
    .map_err(|e| Failed::unavailable(format!("the manifest {uri}: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Failed::unavailable(format!("the manifest {uri} is not readable: {e}")))?;
    // Stored sorted by the snapshot; sorted again so `Manifest::get` and the row order never
    // depend on who wrote the file.
    let manifest = Manifest::new(manifest.files);
    let id = manifest.version_id();
    if id != version {
        return Err(Failed::invalid(format!(
            "the manifest {uri} is of version {id}, not {version}"
        )));
    }
    Ok(manifest)
}

/// Where `relative` (a manifest path, `/`-separated and already in object_store's encoding,
/// as the snapshot listed it) is under `prefix`.
pub(crate) fn location(prefix: &Path, relative: &str) -> Result<Path, Failed> {
    let full = if prefix.as_ref().is_empty() {
        relative.to_string()
    } else {
        format!("{prefix}/{relative}")
    };
    Path::parse(&full)
        .map_err(|e| Failed::unavailable(format!("file {relative:?} of the manifest: {e}")))
}

/// The bytes of `entry`, verified against its size and BLAKE3.
pub(crate) async fn verified(
    store: &dyn ObjectStore,
    prefix: &Path,
    entry: &FileEntry,
    version: &str,
) -> Result<Bytes, Failed> {
    let path = &entry.path;
    let gone = || format!("the source no longer holds version {version}");
    let bytes = match store.get(&location(prefix, path)?).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    }
    .map_err(|e| match e {
        object_store::Error::NotFound { .. } => {
            Failed::changed(format!("file {path} is gone: {}", gone()))
        }
        e => Failed::unavailable(format!("file {path}: {e}")),
    })?;
    if bytes.len() as u64 != entry.size {
        return Err(Failed::changed(format!(
            "file {path} has {} bytes, the manifest {}: {}",
            bytes.len(),
            entry.size,
            gone()
        )));
    }
    // Hashing a large file takes a while: off the async threads, over several cores.
    let hashed = bytes.clone();
    let actual = tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        hasher.update_rayon(&hashed);
        hasher.finalize().to_hex().to_string()
    })
    .await
    .map_err(|e| Failed::training(format!("hashing file {path}: {e}")))?;
    if actual != entry.blake3 {
        return Err(Failed::changed(format!(
            "file {path} has BLAKE3 {actual}, the manifest {}: {}",
            entry.blake3,
            gone()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_join_the_prefix_without_re_encoding() {
        let prefix = Path::from("data");
        assert_eq!(
            location(&prefix, "sub/a.csv").unwrap().as_ref(),
            "data/sub/a.csv"
        );
        // The snapshot stored an encoded part; joining must not encode it twice.
        assert_eq!(
            location(&prefix, "a%25b.csv").unwrap().as_ref(),
            "data/a%25b.csv"
        );
        assert_eq!(
            location(&Path::default(), "a.csv").unwrap().as_ref(),
            "a.csv"
        );
    }
}

//! The artifact store, at one dataset's prefix: each version's files under `<id>/`, and the
//! hand-off folders of sharded checks under `shards/<name>/`.

use ciclo_core::snapshot_result::FailureReason;
use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use std::sync::Arc;

/// Why a check could not run to the end, and what to tell.
pub(crate) type Failed = (FailureReason, String);

/// The artifact store, at this dataset's prefix.
pub(crate) struct Store {
    pub artifacts: Arc<dyn ObjectStore>,
    pub root: Path,
    /// The prefix as a URI, for locations reported to the operator.
    pub uri: String,
}

impl Store {
    /// Where version `id`'s files are.
    pub fn location(&self, id: &str) -> String {
        format!("{}/{id}", self.uri)
    }

    /// `<id>/<file>` parsed, or None when it is not there.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        file: &str,
    ) -> Result<Option<T>, Failed> {
        let path = self.root.clone().join(id).join(file);
        match self.read_bytes(&path).await? {
            None => Ok(None),
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(v) => Ok(Some(v)),
                // Written by another version of ciclo, or damaged: check again from scratch.
                Err(e) => {
                    tracing::warn!(%path, error = %e, "ignoring an unreadable stored file");
                    Ok(None)
                }
            },
        }
    }

    /// Writes `<id>/<file>`.
    pub async fn write_json<T: serde::Serialize>(
        &self,
        id: &str,
        file: &str,
        value: &T,
    ) -> Result<(), Failed> {
        let path = self.root.clone().join(id).join(file);
        let body = serde_json::to_vec_pretty(value).expect("reports serialize");
        self.write_bytes(&path, body).await
    }

    /// The object at `path`, or None when it is not there.
    pub async fn read_bytes(&self, path: &Path) -> Result<Option<bytes::Bytes>, Failed> {
        match self.artifacts.get(path).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(unavailable)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Writes the object at `path` (whole, or not at all).
    pub async fn write_bytes(&self, path: &Path, body: Vec<u8>) -> Result<(), Failed> {
        self.artifacts
            .put(path, body.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The objects under `prefix`.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<Path>, Failed> {
        let objects: Vec<_> = self
            .artifacts
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(objects.into_iter().map(|o| o.location).collect())
    }

    /// Deletes every object under `prefix`.
    pub async fn delete_all(&self, prefix: &Path) -> Result<(), Failed> {
        for path in self.list(prefix).await? {
            match self.artifacts.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }
}

pub(crate) fn unavailable(e: object_store::Error) -> Failed {
    (
        FailureReason::ArtifactStoreUnavailable,
        format!("the artifact store: {e}"),
    )
}

//! Writing the results: `model.json` first, then `metrics.json`, so metrics are never there
//! without the model they describe.

use crate::failure::Failed;
use ciclo_core::contract::{METRICS_FILE, MODEL_FILE};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use std::sync::Arc;

/// The output prefix in the artifact store.
pub(crate) struct Output {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The prefix as given, without a trailing `/`.
    pub uri: String,
}

impl Output {
    /// The URI of `file` under the prefix.
    pub fn uri_of(&self, file: &str) -> String {
        format!("{}/{file}", self.uri)
    }

    /// Writes the model's bytes, then the metrics; returns the model's URI.
    pub async fn write(&self, model: Vec<u8>, metrics: Vec<u8>) -> Result<String, Failed> {
        self.put(MODEL_FILE, model).await?;
        self.put(METRICS_FILE, metrics).await?;
        Ok(self.uri_of(MODEL_FILE))
    }

    async fn put(&self, file: &str, bytes: Vec<u8>) -> Result<(), Failed> {
        self.store
            .put(&self.prefix.clone().join(file), bytes.into())
            .await
            .map_err(|e| Failed::output(format!("writing {}: {e}", self.uri_of(file))))?;
        Ok(())
    }
}

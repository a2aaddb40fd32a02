//! A dataset source: opened as an object store by `ciclo-store`, read for hashing as
//! [`reads_for`] says.

pub use ciclo_store::{ARTIFACTS_ENV_PREFIX, Options, SOURCE_ENV_PREFIX, open};
use std::sync::Arc;

/// How to read objects of `uri` for hashing: direct reads from the local file system, one
/// streaming GET per object elsewhere.
pub fn reads_for(uri: &str) -> crate::Reads {
    if uri.starts_with("file:") {
        // The same root as the store `open` makes for file:// URIs.
        crate::Reads::Local(Arc::new(object_store::local::LocalFileSystem::new()))
    } else {
        crate::Reads::Stream
    }
}

//! Content-addressed dataset versions. A snapshot lists the files of a source, hashes each
//! with BLAKE3 (streamed, several at a time, bounded memory) and writes a canonical manifest
//! of (path, size, hash); the version id is the hash of that manifest, so the same bytes
//! always give the same id and any change gives a new one. A re-snapshot reuses the previous
//! manifest's hash for every file whose size and ETag (or modification time) are unchanged,
//! as a stat cache does, so unchanged data is never read again.
#![forbid(unsafe_code)]

mod artifacts;
pub mod captured;
pub mod check;
pub mod manifest;
pub mod report;
pub mod select;
mod shard;
pub mod snapshot;
pub mod source;

pub use manifest::{FileEntry, Manifest};
pub use snapshot::{Reads, Snapshot, snapshot};

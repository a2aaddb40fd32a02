//! The manifest of a dataset version and its id.

use serde::{Deserialize, Serialize};

/// One file of a version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the source prefix, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 hash of the content, hex.
    pub blake3: String,
    /// The store's ETag when it gave one: with the size, it tells an unchanged file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Last modification time (RFC 3339), the fallback change marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// Every file of a version, sorted by path.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Builds a manifest, sorting the files by path so the order of listing never matters.
    pub fn new(mut files: Vec<FileEntry>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Self { files }
    }

    /// The version id: BLAKE3 over the canonical (path, size, hash) lines. ETags and times
    /// are only change markers and take no part, so copying identical data elsewhere keeps
    /// its id.
    pub fn version_id(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for f in &self.files {
            // A tab cannot end a path written by any of the stores ciclo reads, and each line
            // ends with a newline, so distinct manifests give distinct byte streams.
            hasher.update(format!("{}\t{}\t{}\n", f.path, f.size, f.blake3).as_bytes());
        }
        hasher.finalize().to_hex()[..32].to_string()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The entry for `path`, if the manifest has it.
    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64, hash: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            blake3: hash.into(),
            etag: None,
            last_modified: None,
        }
    }

    #[test]
    fn the_id_depends_on_content_not_on_listing_order_or_change_markers() {
        let a = Manifest::new(vec![entry("b.csv", 2, "bb"), entry("a.csv", 1, "aa")]);
        let mut b = Manifest::new(vec![entry("a.csv", 1, "aa"), entry("b.csv", 2, "bb")]);
        assert_eq!(a.version_id(), b.version_id());
        b.files[0].etag = Some("\"e1\"".into());
        assert_eq!(a.version_id(), b.version_id(), "an ETag is not content");
        let c = Manifest::new(vec![entry("a.csv", 1, "aa"), entry("b.csv", 2, "bc")]);
        assert_ne!(a.version_id(), c.version_id());
        let d = Manifest::new(vec![entry("a.csv", 1, "aa")]);
        assert_ne!(a.version_id(), d.version_id());
    }

    #[test]
    fn entries_are_found_by_path() {
        let m = Manifest::new(vec![entry("z/1.csv", 1, "1"), entry("a.csv", 2, "2")]);
        assert_eq!(m.get("z/1.csv").map(|f| f.size), Some(1));
        assert!(m.get("missing").is_none());
        assert_eq!(m.total_bytes(), 3);
    }
}

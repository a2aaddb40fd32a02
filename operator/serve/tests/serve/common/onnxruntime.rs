//! ONNX Runtime's library for the servers the tests start: fetched from PyPI once
//! (`e2e/onnxruntime/fetch.sh`), as `make build` and the image get it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn library() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| PathBuf::from(super::script_output("e2e/onnxruntime/fetch.sh")))
}

//! ONNX Runtime's shared library, loaded once per process when the first ONNX model loads:
//! from `--onnxruntime` (`CICLO_ONNXRUNTIME`); else `libonnxruntime.so.1` beside the `ciclo`
//! executable (where the image and `make build` put it); else by that name from the dynamic
//! loader's search path. The library is onnxruntime 1.32 as PyPI's wheel ships it
//! (`e2e/onnxruntime/fetch.sh`); a built-in `model.json` never needs it.

use ort::environment::Environment;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The library's file name.
pub const LIBRARY: &str = "libonnxruntime.so.1";

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, made on first use from `library` (or the default
/// places). ONNX Runtime allows one per process, so a later call's `library` is not read.
pub(crate) fn environment(library: Option<&Path>) -> Result<&'static Environment, String> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = locate(library);
            let loaded = ort::init_from(&path).map_err(|e| {
                format!(
                    "ONNX Runtime's library could not be loaded from {} ({e}); point --onnxruntime (CICLO_ONNXRUNTIME) at {LIBRARY} of onnxruntime 1.32",
                    path.display()
                )
            })?;
            loaded
                .with_name("ciclo-serve")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("starting ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Where the library is looked for.
fn locate(configured: Option<&Path>) -> PathBuf {
    if let Some(path) = configured {
        return path.to_path_buf();
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(LIBRARY)))
        .filter(|p| p.is_file());
    // A bare name: dlopen searches the loader's paths.
    beside.unwrap_or_else(|| PathBuf::from(LIBRARY))
}

/// The library the tests load: fetched from PyPI once (`e2e/onnxruntime/fetch.sh`).
#[cfg(test)]
pub(crate) fn for_tests() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/onnxruntime/fetch.sh");
        let out = std::process::Command::new(script)
            .output()
            .expect("e2e/onnxruntime/fetch.sh runs");
        assert!(
            out.status.success(),
            "fetching ONNX Runtime failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_library_wins_and_a_bare_name_is_left_to_the_loader() {
        assert_eq!(
            locate(Some(Path::new("/opt/ort/libonnxruntime.so.1"))),
            Path::new("/opt/ort/libonnxruntime.so.1")
        );
        // The test binary has no library beside it.
        assert_eq!(locate(None), Path::new(LIBRARY));
    }
}

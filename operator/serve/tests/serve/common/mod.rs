//! What the tests share: real models, an HTTP client, servers in this process or in a child
//! process, and a slow object store.
#![allow(dead_code)]

pub mod http;
pub mod model;
pub mod onnxruntime;
pub mod process;
pub mod s3;
pub mod server;

/// What a script of the repository (`path` from its root) prints, trimmed: the path of a
/// tool it fetched or built. The test fails with the script's error output if it fails.
pub fn script_output(path: &str) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {path}: {e}"));
    assert!(
        out.status.success(),
        "{path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

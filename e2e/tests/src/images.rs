//! The images the tests' own pods run, by the names the kubelet node holds them under
//! (e2e/cluster/images.sh imports them into its containerd; nothing is pulled). The process
//! node maps an image by its last path segment (`busybox`, `python`) to a host program, so the
//! same specs run there too.

/// BusyBox (Debian's static build): a shell, `httpd`, `wget`, `nslookup`, `sleep`.
pub const BUSYBOX: &str = "localhost/ciclo-e2e/busybox:1.35";

/// Python 3.11 (Debian's, on a minimal Debian): the standard library and no more. The specs
/// written as YAML constants name it literally.
pub const PYTHON: &str = "localhost/ciclo-e2e/python:3.11";

/// The scikit-learn trainer of `examples/trainers/sklearn`, built from its Containerfile by
/// e2e/cluster/app-image.sh and loaded by `make example-images` (kubelet node only).
pub const SKLEARN_TRAINER: &str = "localhost/ciclo-examples/sklearn-trainer:e2e";

/// MLServer serving ONNX, `examples/runtimes/mlserver`, built and loaded the same way.
pub const MLSERVER: &str = "localhost/ciclo-examples/mlserver-onnx:e2e";

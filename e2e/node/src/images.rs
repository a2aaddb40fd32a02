//! How an image maps to a host program: the process node has no images, so a container
//! without `command` runs the binary mapped to its image's name.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub struct Entrypoints(HashMap<String, PathBuf>);

impl Entrypoints {
    /// Parses `NAME=PATH` pairs.
    pub fn parse(pairs: &[String]) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for pair in pairs.iter().filter(|p| !p.is_empty()) {
            let (name, path) = pair.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--image-entrypoint {pair:?}: expected NAME=PATH")
            })?;
            map.insert(name.to_string(), PathBuf::from(path));
        }
        Ok(Self(map))
    }

    /// The host program standing in for `image`'s entrypoint, if one is mapped.
    pub fn lookup(&self, image: &str) -> Option<&PathBuf> {
        self.0.get(image_name(image))
    }
}

/// `registry:5000/org/ciclo:v1@sha256:..` → `ciclo`.
fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_maps_by_last_path_segment_without_tag_or_digest() {
        let e = Entrypoints::parse(&["ciclo=/bin/ciclo".into()]).unwrap();
        for image in [
            "ciclo",
            "ciclo:latest",
            "ghcr.io/ciclo-dev/ciclo:v1",
            "localhost:5000/ciclo@sha256:abcd",
            "registry:5000/a/ciclo:v2@sha256:ef",
        ] {
            assert_eq!(
                e.lookup(image),
                Some(&PathBuf::from("/bin/ciclo")),
                "{image}"
            );
        }
        assert_eq!(e.lookup("ghcr.io/ciclo-dev/ciclo-extra:v1"), None);
        assert_eq!(e.lookup("python:3.12"), None);
    }

    #[test]
    fn malformed_mapping_is_an_error_naming_it() {
        let err = Entrypoints::parse(&["ciclo".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"ciclo\""), "{err}");
    }
}

//! Getting the model file from its artifact URI and checking it is the one meant: the bytes
//! must hash to the expected `blake3:<hex>` before anything is parsed from them.

use crate::Error;
use crate::args::Format;
use crate::model::Runtime;
use ciclo_core::contract::ARTIFACTS_ENV_PREFIX;
use ciclo_store as source;

const DIGEST_PREFIX: &str = "blake3:";

/// The expected digest as given, checked and in lower case.
pub(crate) fn expected_digest(given: &str) -> Result<String, Error> {
    let hex = given
        .trim()
        .strip_prefix(DIGEST_PREFIX)
        .map(str::to_ascii_lowercase)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex.map(|h| format!("{DIGEST_PREFIX}{h}")).ok_or_else(|| {
        Error::Invalid(format!(
            "--model-digest {given:?} is not blake3:<64 hex digits>"
        ))
    })
}

/// `blake3:<hex>` of `bytes`, as the trainer records it.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("{DIGEST_PREFIX}{}", blake3::hash(bytes).to_hex())
}

/// The bytes at `uri` ([`ciclo_store::fetch`] with the artifact store's settings from
/// `CICLO_ARTIFACTS_*`).
pub(crate) async fn fetch(uri: &str) -> Result<Vec<u8>, Error> {
    source::fetch(uri, ARTIFACTS_ENV_PREFIX)
        .await
        .map_err(|message| Error::Unavailable {
            uri: uri.to_string(),
            message,
        })
}

/// Fetches, verifies and reads the model; returns it with its digest.
pub(crate) async fn load(
    uri: &str,
    expected: Option<&str>,
    format: Format,
    onnxruntime: Option<std::path::PathBuf>,
) -> Result<(Runtime, String), Error> {
    let bytes = fetch(uri).await?;
    let uri = uri.to_string();
    let expected = expected.map(str::to_string);
    // Hashing, parsing and optimizing a large model take a while: off the async threads.
    tokio::task::spawn_blocking(move || {
        let actual = digest_of(&bytes);
        match expected {
            Some(expected) if expected != actual => {
                return Err(Error::DigestMismatch {
                    uri,
                    expected,
                    actual,
                });
            }
            Some(_) => {}
            None => tracing::warn!(%uri, digest = %actual, "no --model-digest: serving the file unverified"),
        }
        let runtime = Runtime::load(format, &bytes, onnxruntime.as_deref()).map_err(|message| Error::InvalidModel {
            uri,
            format: format.name(),
            message,
        })?;
        Ok((runtime, actual))
    })
    .await
    .map_err(|e| Error::Invalid(format!("loading the model stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_blake3_and_64_hex_digits() {
        let hex = "AB".repeat(32);
        assert_eq!(
            expected_digest(&format!(" blake3:{hex}")).unwrap(),
            format!("blake3:{}", hex.to_ascii_lowercase())
        );
        for bad in ["sha256:00", "blake3:zz", &hex, "blake3:abc"] {
            assert!(expected_digest(bad).is_err(), "{bad}");
        }
        assert_eq!(digest_of(b"").len(), "blake3:".len() + 64);
    }
}

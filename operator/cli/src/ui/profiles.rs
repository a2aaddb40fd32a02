//! Dataset versions' profiles (`profile.json`), read from the artifact store where the
//! version's check wrote them (its `location` in the Dataset's status), with the settings a
//! ciclo workload gets: `CICLO_ARTIFACTS_*` in the environment of `ciclo ui` (endpoint,
//! region, keys). The cluster's API gives no access to the store, so the view reads it only
//! if the user can.
//!
//! A version's files never change (its id is the hash of its manifest), so a profile read
//! once is kept; a failure is kept for a while, so that live updates of an open page do not
//! ask an unreachable store again on every change.

use ciclo_core::contract::ARTIFACTS_ENV_PREFIX;
use ciclo_profile::Profile;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many profiles are kept (a page shows two at most; a few pages are open).
const KEEP: usize = 32;
/// How long a failure is answered from memory before the store is asked again.
const RETRY_AFTER: Duration = Duration::from_secs(20);
/// How long one read may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Profiles {
    kept: Mutex<HashMap<String, Kept>>,
}

enum Kept {
    Read(Arc<Profile>),
    Failed(String, Instant),
}

impl Profiles {
    /// The profile in the folder `location` (a version's `location`), or why it cannot be
    /// read.
    pub async fn get(&self, location: &str) -> Result<Arc<Profile>, String> {
        let uri = format!(
            "{}/{}",
            location.trim_end_matches('/'),
            ciclo_snapshot::report::PROFILE
        );
        match self.kept.lock().expect("profiles lock").get(&uri) {
            Some(Kept::Read(profile)) => return Ok(profile.clone()),
            Some(Kept::Failed(why, at)) if at.elapsed() < RETRY_AFTER => return Err(why.clone()),
            _ => {}
        }
        let read = if unconfigured(&uri) {
            Err(format!(
                "no settings for the artifact store in the environment ({ARTIFACTS_ENV_PREFIX}*)"
            ))
        } else {
            read(&uri).await
        }
        .map_err(|e| format!("reading {uri}: {e}"));
        let mut kept = self.kept.lock().expect("profiles lock");
        if kept.len() >= KEEP {
            kept.clear();
        }
        kept.insert(
            uri,
            match &read {
                Ok(profile) => Kept::Read(profile.clone()),
                Err(why) => Kept::Failed(why.clone(), Instant::now()),
            },
        );
        read
    }
}

async fn read(uri: &str) -> Result<Arc<Profile>, String> {
    match tokio::time::timeout(TIMEOUT, ciclo_store::fetch(uri, ARTIFACTS_ENV_PREFIX)).await {
        Err(_) => Err(format!(
            "no answer from the store in {} s",
            TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(bytes)) => serde_json::from_slice::<Profile>(&bytes)
            .map(Arc::new)
            .map_err(|e| format!("not a dataset profile: {e}")),
    }
}

/// Whether `uri` is in a cloud store while nothing in the environment configures one: the
/// object_store crate would then look for credentials on its own (at a cloud's instance
/// metadata address, off this machine) for a store the user never pointed the view at.
fn unconfigured(uri: &str) -> bool {
    let cloud = ["s3://", "gs://", "az://", "abfs://"]
        .iter()
        .any(|s| uri.starts_with(s));
    cloud
        && !std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with(ARTIFACTS_ENV_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_profile_is_read_from_its_location_and_a_missing_one_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("abc");
        std::fs::create_dir(&version).unwrap();
        let profile = Profile {
            rows: 3,
            columns: Vec::new(),
        };
        std::fs::write(
            version.join("profile.json"),
            serde_json::to_vec(&profile).unwrap(),
        )
        .unwrap();
        let profiles = Profiles::default();
        let location = format!("file://{}", version.display());
        assert_eq!(profiles.get(&location).await.unwrap().rows, 3);

        let missing = format!("file://{}", dir.path().join("gone").display());
        let why = profiles.get(&missing).await.unwrap_err();
        assert!(why.contains("gone/profile.json"), "{why}");
    }

    #[test]
    fn a_cloud_store_needs_settings_a_local_one_does_not() {
        // The tests' environment has no CICLO_ARTIFACTS_* (nothing sets them here).
        if std::env::vars().any(|(k, _)| k.starts_with(ARTIFACTS_ENV_PREFIX)) {
            return;
        }
        assert!(unconfigured("s3://ciclo/ml/datasets/iris/abc/profile.json"));
        assert!(!unconfigured("file:///tmp/abc/profile.json"));
    }
}

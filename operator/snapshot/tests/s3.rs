//! Snapshots over a real S3-compatible server (SeaweedFS, started on loopback by
//! `make e2e` through e2e/objectstore/up.sh): versions, new data, and unchanged re-checks.

use ciclo_snapshot::select::Selection;
use ciclo_snapshot::snapshot::Reads;
use ciclo_snapshot::{snapshot, source};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use std::sync::Arc;

fn endpoint() -> String {
    std::env::var("CICLO_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:18333".into())
}

/// A fresh bucket (buckets are made over plain HTTP: object_store does not create them).
fn new_bucket() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let bucket = format!("snapshot-{}-{nanos}", std::process::id());
    let status = std::process::Command::new("curl")
        .args([
            "-sf",
            "--noproxy",
            "*",
            "-X",
            "PUT",
            &format!("{}/{bucket}", endpoint()),
        ])
        .status()
        .expect("running curl");
    assert!(
        status.success(),
        "creating bucket {bucket} at {} (run `make objectstore-up`)",
        endpoint()
    );
    bucket
}

fn open(bucket: &str) -> (Arc<dyn ObjectStore>, Path) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = source::Options {
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        // Explicit keys: without any, a client would look for cloud instance credentials.
        settings: vec![
            ("aws_access_key_id".into(), "ciclo".into()),
            ("aws_secret_access_key".into(), "ciclo-secret".into()),
        ],
        ..source::Options::default()
    };
    source::open(&format!("s3://{bucket}/data"), &options).unwrap()
}

async fn put(store: &dyn ObjectStore, path: &str, body: &'static str) {
    store
        .put(&Path::from(path), PutPayload::from_static(body.as_bytes()))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the S3 server: make e2e"]
async fn versions_follow_the_bytes_in_the_bucket() {
    let bucket = new_bucket();
    let (store, prefix) = open(&bucket);
    put(store.as_ref(), "data/2026/01.csv", "x,y\n1,2\n").await;
    put(store.as_ref(), "data/notes.txt", "not data").await;
    let csv = Selection::new(&["**/*.csv".into()], &[]).unwrap();

    // Reads as a check Job on S3 does: one streaming GET per file.
    let snap = |previous| {
        let store = store.clone();
        let (prefix, csv) = (&prefix, &csv);
        async move {
            snapshot(store, prefix, csv, previous, Reads::Stream)
                .await
                .unwrap()
        }
    };
    let v1 = snap(None).await;
    assert_eq!(v1.manifest.files.len(), 1);
    assert_eq!(
        v1.manifest.files[0].blake3,
        blake3::hash(b"x,y\n1,2\n").to_hex().to_string()
    );
    assert!(
        v1.manifest.files[0].etag.is_some(),
        "S3 gives an ETag to tell unchanged files"
    );

    let unchanged = snap(Some(&v1.manifest)).await;
    assert_eq!(unchanged.manifest.version_id(), v1.manifest.version_id());
    assert_eq!(
        (unchanged.hashed, unchanged.reused),
        (0, 1),
        "unchanged data is not read again"
    );

    put(store.as_ref(), "data/2026/02.csv", "x,y\n3,4\n").await;
    let v2 = snap(Some(&v1.manifest)).await;
    assert_ne!(v2.manifest.version_id(), v1.manifest.version_id());
    assert_eq!((v2.hashed, v2.reused), (1, 1), "only the new file is read");
}

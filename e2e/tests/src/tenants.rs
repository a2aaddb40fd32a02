//! The tenants' S3 store (e2e/objectstore/up.sh, tenants.sh): a SeaweedFS of its own that
//! refuses unsigned requests and knows an admin and two teams, each team's keys limited by an
//! S3 policy document to its own bucket. The tests set it up as the admin, and give each
//! team's namespace its own keys, as a platform team would.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};

/// One identity's keys (and, for a team, its bucket).
#[derive(serde::Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub access_key: String,
    pub secret_key: String,
    #[serde(default)]
    pub bucket: String,
}

/// The identities of the store, as tenants.sh wrote them.
pub struct Tenants {
    pub admin: Identity,
    pub team_a: Identity,
    pub team_b: Identity,
}

impl Tenants {
    /// Reads `.objectstore/tenants/credentials.json` (written by `make objectstore-up`).
    pub fn load() -> Self {
        let path = crate::repo_root().join(".objectstore/tenants/credentials.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `make objectstore-up`, which starts the tenants' store)",
                path.display()
            )
        });
        let mut all: std::collections::BTreeMap<String, Identity> =
            serde_json::from_str(&text).unwrap();
        Self {
            admin: all.remove("admin").expect("admin"),
            team_a: all.remove("team-a").expect("team-a"),
            team_b: all.remove("team-b").expect("team-b"),
        }
    }
}

/// The store's S3 endpoint (`CICLO_TENANT_S3_PORT`, default 18334) at the address both the
/// tests and the pods reach (see [`crate::s3::endpoint`]).
pub fn endpoint() -> String {
    let port = std::env::var("CICLO_TENANT_S3_PORT").unwrap_or_else(|_| "18334".into());
    let host = std::env::var("CICLO_NODE_ADDRESS").unwrap_or_else(|_| "127.0.0.1".into());
    format!("http://{host}:{port}")
}

/// `bucket` of the store, signed with `who`'s keys.
pub fn bucket(who: &Identity, bucket: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(&who.access_key)
        .with_secret_access_key(&who.secret_key)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap()
}

/// Writes `body` at `key` of `store`.
pub async fn put(store: &AmazonS3, key: &str, body: &str) {
    store
        .put(&Path::from(key), PutPayload::from(body.as_bytes().to_vec()))
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
}

/// The keys under `prefix` in `store`.
pub async fn list(store: &AmazonS3, prefix: &str) -> object_store::Result<Vec<String>> {
    use futures::TryStreamExt as _;
    let objects: Vec<_> = store.list(Some(&Path::from(prefix))).try_collect().await?;
    Ok(objects
        .into_iter()
        .map(|o| o.location.to_string())
        .collect())
}

/// A team's Secret (its keys, as object_store names them) and the ConfigMap that makes
/// `bucket/ciclo` the namespace's artifact store with those keys.
pub fn team_store(team: &Identity) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: team-store}}
stringData: {{AWS_ACCESS_KEY_ID: "{key}", AWS_SECRET_ACCESS_KEY: "{secret}"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ciclo-artifact-store}}
data:
  uri: s3://{bucket}/ciclo
  endpoint: {endpoint}
  region: us-east-1
  forcePathStyle: "true"
  secretName: team-store
"#,
        key = team.access_key,
        secret = team.secret_key,
        bucket = team.bucket,
        endpoint = endpoint(),
    )
}

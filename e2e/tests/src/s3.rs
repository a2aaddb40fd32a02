//! The real S3-compatible server of the tests (SeaweedFS, started by e2e/objectstore/up.sh; it
//! accepts unsigned requests): a bucket per test, objects in, artifacts out.

/// The S3 endpoint (`CICLO_S3_PORT`, default 18333), at an address both the tests and the
/// cluster's pods reach: the node's, inside the kubelet node's network namespace
/// (in-cluster-netns.sh sets `CICLO_NODE_ADDRESS`), else loopback (the process node's pods
/// share the host's).
pub fn endpoint() -> String {
    let port = std::env::var("CICLO_S3_PORT").unwrap_or_else(|_| "18333".into());
    let host = std::env::var("CICLO_NODE_ADDRESS").unwrap_or_else(|_| "127.0.0.1".into());
    format!("http://{host}:{port}")
}

/// The bucket the operator keeps artifacts in (e2e/deploy points it there).
pub const ARTIFACTS: &str = "ciclo-artifacts";

/// A bucket of its own for one test, named after it.
pub async fn new_bucket(name: &str) -> String {
    let resp = reqwest::Client::new()
        .put(format!("{}/{name}", endpoint()))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "creating bucket {name}: {status} {text}"
    );
    name.to_string()
}

/// Writes `body` at `key` of `bucket`.
pub async fn put(bucket: &str, key: &str, body: impl Into<reqwest::Body>) {
    let resp = reqwest::Client::new()
        .put(format!("{}/{bucket}/{key}", endpoint()))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "PUT {key}: {status} {text}");
}

/// An object of `bucket`, if it is there.
pub async fn get(bucket: &str, key: &str) -> Option<Vec<u8>> {
    let resp = reqwest::get(format!("{}/{bucket}/{key}", endpoint()))
        .await
        .unwrap();
    if !resp.status().is_success() {
        return None;
    }
    Some(resp.bytes().await.unwrap().to_vec())
}

/// An object of the artifact store as text, if it is there.
pub async fn artifact(path: &str) -> Option<String> {
    get(ARTIFACTS, path)
        .await
        .map(|b| String::from_utf8(b).expect("a text artifact"))
}

/// The keys of `bucket` under `prefix` (S3 ListObjectsV2, every page).
pub async fn list(bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{}/{bucket}?list-type=2&prefix={prefix}", endpoint());
        if let Some(t) = &token {
            url.push_str(&format!("&continuation-token={t}"));
        }
        let resp = reqwest::get(url).await.unwrap();
        let status = resp.status();
        let xml = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "listing {bucket}/{prefix}: {status} {xml}"
        );
        keys.extend(tags(&xml, "Key"));
        token = tags(&xml, "NextContinuationToken").into_iter().next();
        if token.is_none() {
            return keys;
        }
    }
}

/// The texts of every `<tag>…</tag>` of `xml` (keys here are plain: no entities to decode).
fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(str::to_string)
        .collect()
}

//! `docs/reference/crds.md` is generated from `crds/`; a stale copy would document fields the
//! API server no longer has, or miss the ones it checks.

#[test]
fn committed_crd_reference_matches_the_crds() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let crds = std::fs::read_to_string(format!("{root}/crds/ciclo.dev.yaml"))
        .expect("crds/ciclo.dev.yaml exists");
    let committed =
        std::fs::read_to_string(format!("{root}/docs/reference/crds.md")).unwrap_or_default();
    let wanted = ciclo_crd_docs::render(&crds).expect("the committed CRDs render");
    assert!(
        committed == wanted,
        "docs/reference/crds.md is stale: run `make docs` and commit the result"
    );
}

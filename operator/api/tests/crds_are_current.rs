//! `crds/` is generated from the Rust types; installing a stale copy would give users a
//! schema the operator does not speak.

#[test]
fn committed_crds_match_the_api_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds/ciclo.dev.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/ciclo.dev.yaml exists");
    assert!(
        committed == ciclo_api::crds_yaml(),
        "crds/ciclo.dev.yaml is stale: run `make crds` and commit the result"
    );
}

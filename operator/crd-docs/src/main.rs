//! `ciclo-crd-docs CRDS_YAML OUT_MD`: writes the CRD reference (`make docs`).
#![forbid(unsafe_code)]

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        anyhow::bail!(
            "usage: ciclo-crd-docs CRDS_YAML OUT_MD (make docs: crds/ciclo.dev.yaml docs/reference/crds.md)"
        );
    };
    let crds = std::fs::read_to_string(input).with_context(|| format!("reading {input}"))?;
    let reference = ciclo_crd_docs::render(&crds).with_context(|| format!("rendering {input}"))?;
    // Written only once rendered, so a failure leaves the committed file as it was.
    std::fs::write(output, reference).with_context(|| format!("writing {output}"))?;
    Ok(())
}

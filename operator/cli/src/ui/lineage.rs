//! The lineage page (`/lineage`): every model version of the scope as the graph it came
//! from and went to: dataset version → run → model version → deployment, and the loop's
//! return, deployment → the dataset version made of its captured traffic; each node linking
//! to its page. Drawn as SVG on the server, one column per step.

use super::cluster::Health;
use super::short;
use ciclo_api::{Dataset, ModelDeployment, ModelVersion};
use maud::{Markup, html};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A node: its column, its key (unique in the graph), what it says, where it links.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    column: usize,
    key: String,
    label: String,
    href: Option<String>,
}

/// The graph: nodes per column in order, and edges between node keys.
#[derive(Default)]
struct Graph {
    nodes: BTreeSet<Node>,
    edges: BTreeSet<(String, String)>,
    /// Deployment → the dataset version made of what it captured.
    captures: BTreeSet<(String, String)>,
}

impl Graph {
    fn node(&mut self, column: usize, key: String, label: String, href: Option<String>) -> String {
        self.nodes.insert(Node {
            column,
            key: key.clone(),
            label,
            href,
        });
        key
    }
}

const COLUMNS: [&str; 4] = ["Dataset version", "Run", "Model version", "Deployment"];

/// The page's `<main>`.
pub fn render(
    datasets: &Result<Vec<Arc<Dataset>>, Health>,
    versions: &Result<Vec<Arc<ModelVersion>>, Health>,
    deployments: &Result<Vec<Arc<ModelDeployment>>, Health>,
) -> Markup {
    html! {
        h1 { "Lineage" }
        @match versions {
            Err(health) => (super::overview::unavailable("model versions", health)),
            Ok(versions) if versions.is_empty() => p.note { "No model version yet: nothing has been trained." },
            Ok(versions) => {
                @if let Err(health) = deployments {
                    (super::overview::unavailable("model deployments", health))
                }
                @if let Err(health) = datasets {
                    (super::overview::unavailable("datasets", health))
                }
                (draw(&graph(
                    versions,
                    deployments.as_deref().unwrap_or_default(),
                    datasets.as_deref().unwrap_or_default(),
                )))
            }
        }
    }
}

fn graph(
    versions: &[Arc<ModelVersion>],
    deployments: &[Arc<ModelDeployment>],
    datasets: &[Arc<Dataset>],
) -> Graph {
    let mut g = Graph::default();
    for ds in datasets {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let name = ds.metadata.name.clone().unwrap_or_default();
        for v in super::dataset::versions(ds) {
            let Some(from) = &v.captured_from else {
                continue;
            };
            let data = data_node(&mut g, &ns, &name, &v.id);
            let md = &from.model_deployment;
            let deployment = g.node(
                3,
                format!("md/{ns}/{md}"),
                md.clone(),
                Some(format!("/deployments/{ns}/{md}")),
            );
            g.captures.insert((deployment, data));
        }
    }
    for mv in versions {
        let ns = mv.metadata.namespace.clone().unwrap_or_default();
        let l = &mv.spec.lineage;
        let data = data_node(&mut g, &ns, &l.dataset.name, &l.dataset.version);
        let run = g.node(
            1,
            format!("run/{ns}/{}/{}", l.training_run, l.run_id),
            format!("{} run {}", l.training_run, short(&l.run_id)),
            None,
        );
        let version = g.node(
            2,
            format!("mv/{ns}/{}/{}", mv.spec.model, mv.spec.version),
            format!("{}:{}", mv.spec.model, mv.spec.version),
            Some(format!("/models/{ns}/{}", mv.spec.model)),
        );
        g.edges.insert((data, run.clone()));
        g.edges.insert((run, version.clone()));
        for md in deployments.iter().filter(|md| {
            md.metadata.namespace.as_deref() == Some(ns.as_str())
                && md.spec.model.name == mv.spec.model
        }) {
            let status = md.status.as_ref();
            let serves = [
                status.and_then(|s| s.serving_version),
                status.and_then(|s| s.canary_version),
            ]
            .contains(&Some(mv.spec.version));
            if serves {
                let name = md.metadata.name.clone().unwrap_or_default();
                let href = format!("/deployments/{ns}/{name}");
                let deployment = g.node(3, format!("md/{ns}/{name}"), name, Some(href));
                g.edges.insert((version.clone(), deployment));
            }
        }
    }
    g
}

/// A dataset version's node, linking to that version on its dataset's page.
fn data_node(g: &mut Graph, ns: &str, dataset: &str, version: &str) -> String {
    g.node(
        0,
        format!("data/{ns}/{dataset}/{version}"),
        format!("{dataset} @ {}", short(version)),
        Some(format!(
            "/datasets/{ns}/{dataset}?version={}",
            short(version)
        )),
    )
}

const COLUMN_WIDTH: f64 = 258.0;
const ROW_HEIGHT: f64 = 34.0;
const NODE_WIDTH: f64 = 228.0;
/// The first column's left edge: room for the captures' way back up to it.
const LEFT: f64 = 16.0;
/// Room below the rows for the captures' curves back to the first column.
const LOOP_HEIGHT: f64 = 44.0;
const NODE_HEIGHT: f64 = 24.0;
const TOP: f64 = 30.0;

fn draw(g: &Graph) -> Markup {
    // Each node's place: its column, and its rank in that column.
    let mut rank = [0usize; 4];
    let mut at = std::collections::BTreeMap::new();
    for n in &g.nodes {
        let row = rank[n.column];
        rank[n.column] += 1;
        at.insert(
            n.key.clone(),
            (
                n.column as f64 * COLUMN_WIDTH + LEFT,
                TOP + row as f64 * ROW_HEIGHT,
            ),
        );
    }
    let rows = rank.iter().copied().max().unwrap_or(0);
    let bottom = TOP + rows as f64 * ROW_HEIGHT;
    let loops = if g.captures.is_empty() {
        0.0
    } else {
        LOOP_HEIGHT
    };
    let height = bottom + loops + 8.0;
    let width = COLUMN_WIDTH * 4.0 + LEFT;
    html! {
        figure.lineage {
            svg viewBox=(format!("0 0 {width} {height}")) role="img" aria-label="lineage graph" {
                @for (i, title) in COLUMNS.iter().enumerate() {
                    text.tick x=(i as f64 * COLUMN_WIDTH + LEFT) y="16" { (title) }
                }
                @for (from, to) in &g.edges {
                    @if let (Some(a), Some(b)) = (at.get(from), at.get(to)) {
                        line.edge data-from=(from) data-to=(to)
                            x1=(a.0 + NODE_WIDTH) y1=(a.1 + NODE_HEIGHT / 2.0)
                            x2=(b.0) y2=(b.1 + NODE_HEIGHT / 2.0) {}
                    }
                }
                // From under the deployment, back under every row, up the left margin and into
                // the data version's left side: across no other node.
                @for (from, to) in &g.captures {
                    @if let (Some(a), Some(b)) = (at.get(from), at.get(to)) {
                        @let (x1, y1) = (a.0 + NODE_WIDTH / 2.0, a.1 + NODE_HEIGHT);
                        @let y2 = b.1 + NODE_HEIGHT / 2.0;
                        @let (low, side) = (bottom + LOOP_HEIGHT / 2.0, LEFT / 2.0);
                        path.edge.capture data-from=(from) data-to=(to)
                            d=(format!(
                                "M {x1} {y1} V {} Q {x1} {low} {} {low} H {} Q {side} {low} {side} {} V {} Q {side} {y2} {} {y2} H {}",
                                low - 6.0, x1 - 6.0, side + 6.0, low - 6.0, y2 + 6.0, side + 6.0, b.0
                            )) {
                            title { "captured production traffic, labelled" }
                        }
                    }
                }
                @for n in &g.nodes {
                    @let (x, y) = at[&n.key];
                    @let body = html! {
                        g.node data-key=(n.key) {
                            rect x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="4" {}
                            text x=(x + 8.0) y=(y + 16.0) { (n.label) }
                        }
                    };
                    @match &n.href {
                        Some(href) => a href=(href) { (body) },
                        None => (body),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::fixtures;
    use crate::ui::all;

    #[test]
    fn one_edge_per_link_from_data_to_deployment() {
        let versions = fixtures::model_versions();
        let deployments = fixtures::model_deployments();
        let html = render(
            &all(fixtures::datasets()),
            &all(versions.clone()),
            &all(deployments.clone()),
        )
        .into_string();
        let lineage = |mv: &ModelVersion| mv.spec.lineage.clone();
        // The links the objects state: the data each run trained on, the version each run
        // registered, the deployments serving or rolling out each version.
        let data_to_run: BTreeSet<_> = versions
            .iter()
            .map(|mv| (lineage(mv).dataset.version, lineage(mv).run_id))
            .collect();
        let run_to_version = versions.len();
        let version_to_deployment = versions
            .iter()
            .flat_map(|mv| deployments.iter().map(move |md| (mv, md)))
            .filter(|(mv, md)| {
                let s = md.status.as_ref();
                md.spec.model.name == mv.spec.model
                    && [
                        s.and_then(|s| s.serving_version),
                        s.and_then(|s| s.canary_version),
                    ]
                    .contains(&Some(mv.spec.version))
            })
            .count();
        assert!(
            version_to_deployment >= 2,
            "the fixtures serve and roll out versions"
        );
        assert_eq!(
            html.matches("<line class=\"edge\"").count(),
            data_to_run.len() + run_to_version + version_to_deployment,
            "{html}"
        );
        assert_eq!(
            html.matches("data-key=\"mv/").count(),
            versions.len(),
            "one node per version"
        );
        assert!(html.contains("data-to=\"md/ml/iris\""), "{html}");
        let mv = &versions[0];
        let data = &mv.spec.lineage.dataset;
        assert!(
            html.contains(&format!(
                "<a href=\"/datasets/ml/{}?version={}\">",
                data.name,
                short(&data.version)
            )),
            "a dataset version links to its page: {html}"
        );
        assert!(
            html.contains("<a href=\"/models/ml/iris\">"),
            "versions link to their model: {html}"
        );
    }

    #[test]
    fn nothing_trained_or_forbidden_says_so() {
        let html = render(&Ok(Vec::new()), &Ok(Vec::new()), &Ok(Vec::new())).into_string();
        assert!(html.contains("nothing has been trained"));
        let html = render(
            &Ok(Vec::new()),
            &Err(Health::Forbidden("no".into())),
            &Ok(Vec::new()),
        )
        .into_string();
        assert!(html.contains("class=\"forbidden\""));
    }

    #[test]
    fn the_loop_closes_from_a_deployment_to_the_dataset_version_of_its_capture() {
        let mut datasets = fixtures::datasets();
        let iris = datasets
            .iter_mut()
            .find(|d| d.metadata.name.as_deref() == Some("iris"))
            .unwrap();
        let status = iris.status.as_mut().unwrap();
        let mut captured = status.versions[0].clone();
        captured.id = "c0ffee0000000000000000000000beef".into();
        captured.captured_from = Some(ciclo_api::dataset::CapturedFrom {
            model_deployment: "iris".into(),
            model_versions: vec!["2".into()],
            captured_rows: 40,
        });
        status.versions.insert(0, captured);
        let html = render(
            &all(datasets),
            &all(fixtures::model_versions()),
            &all(fixtures::model_deployments()),
        )
        .into_string();
        assert_eq!(
            html.matches("<path class=\"edge capture\"").count(),
            1,
            "{html}"
        );
        assert!(
            html.contains(
                "data-from=\"md/ml/iris\" data-to=\"data/ml/iris/c0ffee0000000000000000000000beef\""
            ),
            "{html}"
        );
        // The captured version is a node of its own, linking to its dataset's page.
        assert!(html.contains("<a href=\"/datasets/ml/iris?version=c0ffee000000\">"));
    }
}

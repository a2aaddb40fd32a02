//! A classification tree with linfa-trees (CART, Gini impurity), written as a list of nodes.
//!
//! linfa-trees picks a leaf's class among equally frequent ones in hash-map order, which
//! changes from one process to the next. So that the same data always gives the same model
//! file, every leaf's class is recomputed from the training rows that reach it (the first
//! class among the most frequent), and sibling leaves that then agree are merged, as linfa's
//! own pruning does. The leaves' class shares of those rows are the predicted probabilities,
//! which linfa does not keep.
//!
//! What remains: when such a tie decided linfa's pruning, the tree's shape (and a tied leaf's
//! prediction) can still differ between runs; with three or more classes, so can the choice
//! between two splits of exactly equal impurity, which linfa sums in f32 in hash-map order.

use super::guarded;
use crate::failure::Failed;
use crate::spec::Params;
use ciclo_model::{Node, Tree};
// Views: the rows are not copied again for linfa.
use linfa::DatasetBase;
use linfa::traits::Fit as _;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2, ArrayView1};

/// Fits a tree on rows `x` with class indices `y` (of `n_classes`).
pub(crate) fn fit(
    x: &Array2<f64>,
    y: &Array1<usize>,
    n_classes: usize,
    params: &Params,
) -> Result<(Tree, DecisionTree<f64, usize>), Failed> {
    let dataset = DatasetBase::new(x.view(), y.view());
    let fitted = guarded("the decision tree", || {
        DecisionTree::params()
            .max_depth(params.max_depth)
            .min_weight_split(params.min_weight_split)
            .fit(&dataset)
            .map_err(|e| e.to_string())
    })?;
    let mut draft = Draft::of(fitted.root_node(), n_classes);
    for (row, class) in x.rows().into_iter().zip(y) {
        draft.count(row, *class);
    }
    let mut nodes = Vec::new();
    draft.settle().flatten(&mut nodes);
    Ok((Tree { nodes }, fitted))
}

/// A tree being rewritten: linfa's splits, with each leaf's training rows counted by class.
enum Draft {
    Split {
        feature: usize,
        threshold: f64,
        left: Box<Draft>,
        right: Box<Draft>,
    },
    Leaf {
        class: usize,
        counts: Vec<f64>,
    },
}

impl Draft {
    fn of(node: &TreeNode<f64, usize>, n_classes: usize) -> Draft {
        match (node.prediction(), node.children().as_slice()) {
            (None, [Some(left), Some(right)]) => {
                let (feature, threshold, _) = node.split();
                Draft::Split {
                    feature,
                    threshold,
                    left: Box::new(Draft::of(left, n_classes)),
                    right: Box::new(Draft::of(right, n_classes)),
                }
            }
            // linfa marks a node with a missing child as a leaf, with a prediction.
            (prediction, _) => Draft::Leaf {
                class: prediction.unwrap_or_default(),
                counts: vec![0.0; n_classes],
            },
        }
    }

    /// Counts one training row at the leaf it reaches, walking as `predict` does.
    fn count(&mut self, row: ArrayView1<f64>, class: usize) {
        match self {
            Draft::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                if row[*feature] < *threshold {
                    left.count(row, class)
                } else {
                    right.count(row, class)
                }
            }
            Draft::Leaf { counts, .. } => counts[class] += 1.0,
        }
    }

    /// Relabels the leaves from their counts and merges siblings that agree, bottom up.
    fn settle(self) -> Draft {
        match self {
            Draft::Leaf { class, counts } => {
                let total: f64 = counts.iter().sum();
                let class = if total > 0.0 {
                    first_max(&counts)
                } else {
                    class
                };
                Draft::Leaf { class, counts }
            }
            Draft::Split {
                feature,
                threshold,
                left,
                right,
            } => match (left.settle(), right.settle()) {
                (
                    Draft::Leaf {
                        class: a,
                        counts: l,
                    },
                    Draft::Leaf {
                        class: b,
                        counts: r,
                    },
                ) if a == b => Draft::Leaf {
                    class: a,
                    counts: l.iter().zip(&r).map(|(l, r)| l + r).collect(),
                },
                (left, right) => Draft::Split {
                    feature,
                    threshold,
                    left: Box::new(left),
                    right: Box::new(right),
                },
            },
        }
    }

    /// Appends the nodes in pre-order (children after their parent); returns this one's index.
    fn flatten(self, nodes: &mut Vec<Node>) -> usize {
        let at = nodes.len();
        match self {
            Draft::Leaf { class, counts } => {
                let total: f64 = counts.iter().sum();
                let probabilities = if total > 0.0 {
                    counts.iter().map(|c| c / total).collect()
                } else {
                    (0..counts.len())
                        .map(|k| f64::from(u8::from(k == class)))
                        .collect()
                };
                nodes.push(Node::Leaf {
                    class,
                    probabilities,
                });
            }
            Draft::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                // A placeholder until the children's indices are known.
                nodes.push(Node::Split {
                    feature,
                    threshold,
                    left: 0,
                    right: 0,
                });
                let l = left.flatten(nodes);
                let r = right.flatten(nodes);
                nodes[at] = Node::Split {
                    feature,
                    threshold,
                    left: l,
                    right: r,
                };
            }
        }
        at
    }
}

/// The index of the first largest count.
fn first_max(counts: &[f64]) -> usize {
    let mut best = 0;
    for (k, c) in counts.iter().enumerate() {
        if *c > counts[best] {
            best = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testdata::blobs;
    use ciclo_model::classify;
    use ciclo_model::{FORMAT, Model};
    use linfa::traits::Predict as _;

    fn model(tree: Tree, n_classes: usize) -> Model {
        let json = serde_json::json!({
            "format": FORMAT, "algorithm": "DecisionTree", "target": "y",
            "features": ["a", "b"], "classes": (0..n_classes).collect::<Vec<_>>(), "tree": tree,
        });
        Model::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
    }

    #[test]
    fn the_model_file_predicts_what_linfa_does() {
        for (n_classes, max_depth) in [(2, None), (3, Some(3)), (5, Some(6))] {
            let (x, y) = blobs(300, n_classes, 5);
            let (vx, vy) = blobs(120, n_classes, 6);
            let params = Params {
                max_depth,
                ..Params::default()
            };
            let (tree, fitted) = fit(&x, &y, n_classes, &params).unwrap();
            let model = model(tree, n_classes);
            let expected = fitted.predict(&vx);
            let mut right = 0;
            for (i, row) in vx.rows().into_iter().enumerate() {
                let (class, p) = classify(&model, row.as_slice().unwrap());
                assert_eq!(class, expected[i], "{n_classes} classes, row {i}");
                assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                right += usize::from(class == vy[i]);
            }
            assert!(right > 100, "{n_classes} classes: {right} of 120 right");
        }
    }

    #[test]
    fn leaves_take_the_first_most_frequent_class_and_agreeing_siblings_merge() {
        let leaf = |class, counts: &[f64]| Draft::Leaf {
            class,
            counts: counts.to_vec(),
        };
        let split = |left, right| Draft::Split {
            feature: 0,
            threshold: 1.0,
            left: Box::new(left),
            right: Box::new(right),
        };
        // linfa said class 1 on a tie; the rewrite says 0, like its sibling, and merges them.
        let mut nodes = Vec::new();
        split(leaf(1, &[2.0, 2.0]), leaf(0, &[3.0, 1.0]))
            .settle()
            .flatten(&mut nodes);
        assert_eq!(
            nodes,
            vec![Node::Leaf {
                class: 0,
                probabilities: vec![5.0 / 8.0, 3.0 / 8.0]
            }]
        );
        let mut nodes = Vec::new();
        split(
            leaf(0, &[3.0, 0.0]),
            split(leaf(1, &[0.0, 2.0]), leaf(0, &[0.0, 0.0])),
        )
        .settle()
        .flatten(&mut nodes);
        assert_eq!(nodes.len(), 5);
        assert!(matches!(
            nodes[2],
            Node::Split {
                left: 3,
                right: 4,
                ..
            }
        ));
        assert!(
            matches!(&nodes[4], Node::Leaf { class: 0, probabilities } if probabilities == &vec![1.0, 0.0])
        );
    }
}

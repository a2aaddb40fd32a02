//! Predictions from a [`Model`] alone: what `ciclo serve` runs, and what the trainer's own
//! metrics are computed with, so the metrics describe the model file that is served.

use crate::class::Class;
use crate::model::{Link, Model, Node};

/// One row's prediction.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// A classifier's class, and every class's probability in the order of `Model::classes`.
    Class {
        class: Class,
        probabilities: Vec<f64>,
    },
    /// A regression's value.
    Value(f64),
}

impl Prediction {
    /// The index of the predicted class among the model's classes (with `probabilities`).
    fn class_index(probabilities: &[f64]) -> usize {
        // The first most probable class, as linfa's argmax picks it.
        let mut best = 0;
        for (k, p) in probabilities.iter().enumerate() {
            if *p > probabilities[best] {
                best = k;
            }
        }
        best
    }
}

/// Predicts every row (each with the model's features, in order). A model that fails
/// [`Model::check`] or a row of the wrong width is an error. A NaN feature goes right at every
/// split and makes a linear model's output NaN.
pub fn predict<R: AsRef<[f64]>>(model: &Model, rows: &[R]) -> Result<Vec<Prediction>, String> {
    model.check()?;
    predict_rows(model, rows)
}

/// A model that passed [`Model::check`], to predict with again and again without checking it
/// again: a tree's check walks every node, a linear model's reads every coefficient, and a
/// server predicts a row or a few at a time.
#[derive(Clone, Debug)]
pub struct Checked(Model);

impl Checked {
    pub fn new(model: Model) -> Result<Self, String> {
        model.check()?;
        Ok(Self(model))
    }

    pub fn model(&self) -> &Model {
        &self.0
    }

    /// As [`predict`].
    pub fn predict<R: AsRef<[f64]>>(&self, rows: &[R]) -> Result<Vec<Prediction>, String> {
        predict_rows(&self.0, rows)
    }
}

fn predict_rows<R: AsRef<[f64]>>(model: &Model, rows: &[R]) -> Result<Vec<Prediction>, String> {
    let width = model.features.len();
    if let Some((i, row)) = rows
        .iter()
        .map(AsRef::as_ref)
        .enumerate()
        .find(|(_, r)| r.len() != width)
    {
        return Err(format!(
            "row {i} has {} values, the model's features are {width}",
            row.len()
        ));
    }
    Ok(rows
        .iter()
        .map(|row| predict_row(model, row.as_ref()))
        .collect())
}

/// The index of the class predicted for `row`, and every class's probability; a checked
/// classifier only.
pub fn classify(model: &Model, row: &[f64]) -> (usize, Vec<f64>) {
    let probabilities = match (&model.linear, &model.tree) {
        (Some(linear), _) => {
            let z = outputs(linear, row);
            match linear.link {
                Link::Logistic => {
                    let p = 1.0 / (1.0 + (-z[0]).exp());
                    // Predicted at p >= 0.5, as linfa does, and here an exact 0.5 would tie.
                    return (usize::from(p >= 0.5), vec![1.0 - p, p]);
                }
                _ => softmax(&z),
            }
        }
        (None, Some(tree)) => {
            let mut i = 0;
            loop {
                match &tree.nodes[i] {
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => {
                        i = if row[*feature] < *threshold {
                            *left
                        } else {
                            *right
                        }
                    }
                    Node::Leaf {
                        class,
                        probabilities,
                    } => return (*class, probabilities.clone()),
                }
            }
        }
        (None, None) => unreachable!("a checked model has a linear part or a tree"),
    };
    (Prediction::class_index(&probabilities), probabilities)
}

fn predict_row(model: &Model, row: &[f64]) -> Prediction {
    match &model.linear {
        Some(linear) if linear.link == Link::Identity => Prediction::Value(outputs(linear, row)[0]),
        _ => {
            let (k, probabilities) = classify(model, row);
            Prediction::Class {
                class: model.classes[k].clone(),
                probabilities,
            }
        }
    }
}

fn outputs(linear: &crate::model::Linear, row: &[f64]) -> Vec<f64> {
    linear
        .coefficients
        .iter()
        .zip(&linear.intercepts)
        .map(|(w, b)| b + w.iter().zip(row).map(|(w, x)| w * x).sum::<f64>())
        .collect()
}

/// Shifted by the largest output first, so no `exp` overflows.
fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::Algorithm;
    use crate::model::{FORMAT, Linear, Tree};

    fn model(classes: Vec<Class>) -> Model {
        Model {
            format: FORMAT.into(),
            algorithm: Algorithm::LogisticRegression,
            target: "y".into(),
            features: vec!["a".into(), "b".into()],
            classes,
            linear: None,
            tree: None,
            params: Default::default(),
            dataset_version: "v".into(),
        }
    }

    #[test]
    fn a_logistic_model_gives_the_greater_class_its_probability() {
        let mut m = model(vec![Class::Str("no".into()), Class::Str("yes".into())]);
        m.linear = Some(Linear {
            link: Link::Logistic,
            coefficients: vec![vec![1.0, -1.0]],
            intercepts: vec![0.0],
        });
        let got = predict(&m, &[vec![2.0, 0.0], vec![0.0, 2.0]]).unwrap();
        let p = 1.0 / (1.0 + (-2.0f64).exp());
        for (got, (class, p_yes)) in got.iter().zip([("yes", p), ("no", 1.0 - p)]) {
            let Prediction::Class {
                class: c,
                probabilities,
            } = got
            else {
                panic!("{got:?}")
            };
            assert_eq!(c, &Class::Str(class.into()));
            assert!(
                (probabilities[1] - p_yes).abs() < 1e-12,
                "{probabilities:?}"
            );
            assert!((probabilities[0] + probabilities[1] - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn a_linear_regression_adds_up() {
        let mut m = model(vec![]);
        m.algorithm = Algorithm::LinearRegression;
        m.linear = Some(Linear {
            link: Link::Identity,
            coefficients: vec![vec![3.0, 0.5]],
            intercepts: vec![2.0],
        });
        assert_eq!(
            predict(&m, &[vec![1.0, 2.0]]).unwrap(),
            vec![Prediction::Value(6.0)]
        );
    }

    #[test]
    fn a_tree_walks_to_its_leaf() {
        let mut m = model(vec![Class::Int(0), Class::Int(1)]);
        m.algorithm = Algorithm::DecisionTree;
        m.tree = Some(Tree {
            nodes: vec![
                Node::Split {
                    feature: 1,
                    threshold: 0.5,
                    left: 1,
                    right: 2,
                },
                Node::Leaf {
                    class: 0,
                    probabilities: vec![0.75, 0.25],
                },
                Node::Leaf {
                    class: 1,
                    probabilities: vec![0.0, 1.0],
                },
            ],
        });
        let got = predict(&m, &[vec![9.0, 0.4], vec![9.0, 0.5]]).unwrap();
        assert!(
            matches!(&got[0], Prediction::Class { class: Class::Int(0), probabilities } if probabilities[0] == 0.75)
        );
        assert!(matches!(
            &got[1],
            Prediction::Class {
                class: Class::Int(1),
                ..
            }
        ));
    }

    #[test]
    fn softmax_picks_the_first_most_probable_class() {
        let mut m = model(vec![Class::Int(1), Class::Int(2), Class::Int(3)]);
        m.linear = Some(Linear {
            link: Link::Softmax,
            coefficients: vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![1.0, 0.0]],
            intercepts: vec![0.0, 0.0, 0.0],
        });
        let got = predict(&m, &[vec![1000.0, 0.0]]).unwrap();
        let Prediction::Class {
            class,
            probabilities,
        } = &got[0]
        else {
            panic!("{got:?}")
        };
        assert_eq!(class, &Class::Int(2));
        assert!(
            (probabilities[1] - 0.5).abs() < 1e-12,
            "no overflow: {probabilities:?}"
        );
    }

    #[test]
    fn broken_models_and_rows_are_errors_not_panics() {
        let mut m = model(vec![Class::Int(0), Class::Int(1)]);
        m.tree = Some(Tree {
            nodes: vec![Node::Split {
                feature: 0,
                threshold: 1.0,
                left: 0,
                right: 0,
            }],
        });
        assert!(
            predict(&m, &[vec![1.0, 2.0]])
                .unwrap_err()
                .contains("children")
        );
        m.tree = Some(Tree {
            nodes: vec![Node::Leaf {
                class: 5,
                probabilities: vec![1.0, 0.0],
            }],
        });
        assert!(predict(&m, &[vec![1.0, 2.0]]).is_err());
        m.tree = None;
        m.linear = Some(Linear {
            link: Link::Logistic,
            coefficients: vec![vec![1.0]],
            intercepts: vec![0.0],
        });
        assert!(
            predict(&m, &[vec![1.0, 2.0]])
                .unwrap_err()
                .contains("2 values")
        );
        m.linear.as_mut().unwrap().coefficients = vec![vec![1.0, 1.0]];
        assert!(
            predict(&m, &[vec![1.0]])
                .unwrap_err()
                .contains("row 0 has 1 values")
        );
        m.format = "other/v9".into();
        assert!(predict::<Vec<f64>>(&m, &[]).unwrap_err().contains("format"));
        assert!(Checked::new(m).unwrap_err().contains("format"));
        assert!(Model::from_json(b"{\"format\": 1}").is_err());
    }

    #[test]
    fn a_checked_model_predicts_borrowed_rows_as_predict_does() {
        let mut m = model(vec![Class::Int(0), Class::Int(1)]);
        m.linear = Some(Linear {
            link: Link::Logistic,
            coefficients: vec![vec![1.0, -1.0]],
            intercepts: vec![0.5],
        });
        let values = [2.0, 0.0, 0.0, 2.0, 1.0, 1.0];
        let rows: Vec<&[f64]> = values.chunks(2).collect();
        let checked = Checked::new(m.clone()).unwrap();
        assert_eq!(checked.predict(&rows).unwrap(), predict(&m, &rows).unwrap());
        assert!(
            checked
                .predict(&[&values[..3]])
                .unwrap_err()
                .contains("row 0 has 3 values")
        );
    }
}

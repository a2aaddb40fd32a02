//! The table split into training and validation rows, as the arrays linfa takes, with class
//! labels as indices into the sorted training classes.

use crate::failure::Failed;
use crate::split::is_validation;
use crate::table::{Table, Target};
use ciclo_model::Class;
use ndarray::{Array1, Array2};
use std::collections::BTreeMap;

/// Most classes a classifier takes: more is almost surely a numeric target meant for a
/// regression, and would make a multinomial model as large as the data.
const MAX_CLASSES: usize = 1000;

/// Training and validation rows.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The classes of the training rows in ascending order; empty for a regression.
    pub classes: Vec<Class>,
    pub train: Part,
    pub validation: Part,
}

/// One side of the split.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub x: Array2<f64>,
    pub y: Labels,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Labels {
    Numbers(Array1<f64>),
    /// Indices into `Prepared::classes`; a validation class the training rows lack gets an
    /// index past them.
    Classes(Array1<usize>),
}

impl Part {
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    /// The rows as plain vectors, as `predict` takes them.
    pub fn row_vecs(&self) -> Vec<Vec<f64>> {
        self.x.rows().into_iter().map(|r| r.to_vec()).collect()
    }
}

/// Splits `table` by `seed` and `test_fraction`.
pub(crate) fn prepare(table: &Table, seed: u64, test_fraction: f64) -> Result<Prepared, Failed> {
    let held: Vec<bool> = table
        .index
        .iter()
        .map(|i| is_validation(seed, *i, test_fraction))
        .collect();
    let n_validation = held.iter().filter(|h| **h).count();
    let n_train = table.rows() - n_validation;
    if n_train == 0 || n_validation == 0 {
        return Err(Failed::training(format!(
            "{} usable rows give {n_train} training and {n_validation} validation rows at testFraction {test_fraction}: too few to fit and measure a model",
            table.rows()
        )));
    }
    let matrix = |validation: bool| {
        let values: Vec<f64> = (0..table.rows())
            .filter(|i| held[*i] == validation)
            .flat_map(|i| table.row(i).iter().copied())
            .collect();
        let rows = if validation { n_validation } else { n_train };
        Array2::from_shape_vec((rows, table.features.len()), values)
            .expect("every row has one value per feature")
    };
    let held = &held;
    let pick = |validation: bool| (0..table.rows()).filter(move |i| held[*i] == validation);
    let (classes, train_y, validation_y) = match &table.target {
        Target::Numbers(ys) => (
            Vec::new(),
            Labels::Numbers(pick(false).map(|i| ys[i]).collect()),
            Labels::Numbers(pick(true).map(|i| ys[i]).collect()),
        ),
        Target::Classes(ys) => {
            let mut classes: Vec<Class> = pick(false).map(|i| ys[i].clone()).collect();
            classes.sort();
            classes.dedup();
            if classes.len() > MAX_CLASSES {
                return Err(Failed::invalid(format!(
                    "the target has {} distinct values in the training rows, more than the {MAX_CLASSES} classes a classifier takes: is it a number to predict with LinearRegression?",
                    classes.len()
                )));
            }
            let mut unseen: BTreeMap<&Class, usize> = BTreeMap::new();
            for i in pick(true) {
                if classes.binary_search(&ys[i]).is_err() {
                    unseen.insert(&ys[i], 0);
                }
            }
            for (n, slot) in unseen.values_mut().enumerate() {
                *slot = classes.len() + n;
            }
            let index = |c: &Class| classes.binary_search(c).unwrap_or_else(|_| unseen[c]);
            let train_y = Labels::Classes(pick(false).map(|i| index(&ys[i])).collect());
            let validation_y = Labels::Classes(pick(true).map(|i| index(&ys[i])).collect());
            (classes, train_y, validation_y)
        }
    };
    Ok(Prepared {
        classes,
        train: Part {
            x: matrix(false),
            y: train_y,
        },
        validation: Part {
            x: matrix(true),
            y: validation_y,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: u64, target: Target) -> Table {
        Table {
            features: vec!["x".into()],
            x: (0..n).map(|i| i as f64).collect(),
            target,
            index: (0..n).collect(),
            dropped: 0,
            skipped: vec![],
        }
    }

    #[test]
    fn rows_go_where_their_index_hash_says() {
        let t = table(
            200,
            Target::Numbers((0..200).map(|i| i as f64 * 2.0).collect()),
        );
        let p = prepare(&t, 42, 0.25).unwrap();
        let expected: Vec<f64> = (0..200u64)
            .filter(|i| is_validation(42, *i, 0.25))
            .map(|i| i as f64)
            .collect();
        assert_eq!(p.validation.x.column(0).to_vec(), expected);
        assert_eq!(p.train.rows() + p.validation.rows(), 200);
        let Labels::Numbers(y) = &p.validation.y else {
            panic!()
        };
        assert_eq!(
            y.to_vec(),
            expected.iter().map(|x| x * 2.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn classes_are_the_sorted_training_labels_and_unseen_ones_come_after() {
        let labels: Vec<Class> = (0..400)
            .map(|i| Class::Str(["b", "a"][i % 2].into()))
            .collect();
        let mut t = table(400, Target::Classes(labels));
        // A class only one validation row has.
        let v = (0..400u64).find(|i| is_validation(1, *i, 0.2)).unwrap() as usize;
        if let Target::Classes(ys) = &mut t.target {
            ys[v] = Class::Str("c".into());
        }
        let p = prepare(&t, 1, 0.2).unwrap();
        assert_eq!(
            p.classes,
            vec![Class::Str("a".into()), Class::Str("b".into())]
        );
        let Labels::Classes(y) = &p.validation.y else {
            panic!()
        };
        assert_eq!(y.iter().filter(|k| **k == 2).count(), 1);
    }

    #[test]
    fn too_few_rows_to_split_is_a_training_failure() {
        let t = table(1, Target::Numbers(vec![1.0]));
        let err = prepare(&t, 42, 0.2).unwrap_err();
        assert!(err.message.contains("too few"), "{err:?}");
    }
}

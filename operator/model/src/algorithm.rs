//! The algorithms of ciclo's built-in trainer, as a model file names them.

use serde::{Deserialize, Serialize};

/// Algorithms of the built-in trainer (the same names as the TrainingRun API's).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Binary (two classes) or multinomial (three or more) logistic regression.
    LogisticRegression,
    /// Ordinary least squares.
    LinearRegression,
    /// A classification tree (CART, Gini impurity).
    DecisionTree,
}

impl Algorithm {
    /// Whether the target is a class label (rather than a number to predict).
    pub fn classifies(self) -> bool {
        !matches!(self, Algorithm::LinearRegression)
    }
}

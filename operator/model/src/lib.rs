//! The model file formats ciclo writes and serves, and the prediction code that reads them:
//! `model.json` (`ciclo.dev/model/v1`, see MODEL_FORMAT.md), what `ciclo train` fits and
//! `ciclo serve` answers with. One crate for both, so the trainer's metrics are computed by
//! the very code that serves the file, and the server depends on no trainer.
#![forbid(unsafe_code)]

mod algorithm;
mod class;
mod model;
mod predict;

pub use algorithm::Algorithm;
pub use class::Class;
pub use model::{FORMAT, Linear, Link, Model, Node, Tree};
pub use predict::{Checked, Prediction, classify, predict};

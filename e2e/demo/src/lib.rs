//! `make demo` and its e2e test: the example team's ML cycle (examples/gitops/ml-team over
//! the data in examples/data/wdbc) run twice on a cluster, then a broken batch rejected.
#![forbid(unsafe_code)]

pub mod cycle;
pub mod data;
pub mod scenario;

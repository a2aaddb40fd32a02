//! `make demo` and its e2e test: the example team's ML cycle (examples/gitops/ml-team over
//! the data in examples/data/wdbc) run twice on a cluster, then a broken batch rejected, then
//! a third time from production: shifted requests, skew, their labels as data, a new version.
#![forbid(unsafe_code)]

pub mod cycle;
pub mod data;
pub mod scenario;

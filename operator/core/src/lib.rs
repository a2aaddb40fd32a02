//! What both sides of ciclo share — the operator (which knows Kubernetes) and the data
//! plane (snapshot, train, serve, which does not): dataset expectations, metrics and gates,
//! and the names of the workload contract. One set of types, so the two never drift.
#![forbid(unsafe_code)]

pub mod contract;
pub mod distance;
pub mod expectations;
pub mod metrics;
pub mod prometheus_names;
pub mod snapshot_result;
pub mod train_result;

//! Promotions written back to git. A ModelDeployment in write-back mode pins its model
//! version in the team's repository; when ciclo promotes a newer version (or rolls a failed
//! one back) it edits that pin in the file, commits with the version's lineage in the message
//! and pushes — to the branch the GitOps controller follows, or to a branch for review — and
//! the cluster follows git.
//!
//! Each commit carries trailers naming the deployment and the version ([`trailers`]), and the
//! branch's history is the record of what was written back: an operator killed after its push
//! landed finds that commit and pushes no second one; a promotion a person reverted is not
//! made again.

#![deny(unsafe_code)]

pub mod pin;
mod timeouts;
pub mod trailers;
mod write_back;

pub use trailers::Change;
pub use write_back::{Credentials, Error, Outcome, Remote, Request, write_back, write_back_with};

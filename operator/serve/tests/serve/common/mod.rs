//! What the tests share: real models, an HTTP client, servers in this process or in a child
//! process, and a slow object store.
#![allow(dead_code)]

pub mod http;
pub mod model;
pub mod process;
pub mod s3;
pub mod server;

//! One error type for every controller. Errors are transient (retried with back-off);
//! a spec that cannot work is not an error but a `Stalled` condition.

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("could not serialise status: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// A stable label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(e)) if e.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(e)) if e.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "connection",
            Error::Serialize(_) => "serialize",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

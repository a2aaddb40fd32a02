//! One error type for every controller. Errors are transient (retried with back-off);
//! a spec that cannot work is not an error but a `Stalled` condition.

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("could not serialise status: {0}")]
    Serialize(#[from] serde_json::Error),
    /// A namespace's artifact store could not be opened, read or written (the registry's
    /// records): the message names the object, never a key.
    #[error("artifact store: {0}")]
    Store(String),
}

impl Error {
    /// The API server's message when it refused an object ciclo built from a spec as invalid
    /// (400 Bad Request, 422 Unprocessable Entity): retrying cannot help, the spec must change.
    /// Every other refusal (403 quota, 409, 5xx, time-outs) may pass, and is retried.
    pub fn invalid_object(&self) -> Option<&str> {
        match self {
            Error::Kube(kube::Error::Api(e)) if matches!(e.code, 400 | 422) => Some(&e.message),
            _ => None,
        }
    }

    /// What went wrong, for a condition's message: the API server's own words when it
    /// answered, else the error.
    pub fn message(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(e)) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// A stable label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(e)) if e.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(e)) if e.code == 404 => "not_found",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "connection",
            Error::Serialize(_) => "serialize",
            Error::Store(_) => "store",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, reason: &str) -> Error {
        Error::Kube(kube::Error::Api(Box::new(kube::core::Status::failure(
            "Job.batch \"x\" is invalid: spec.template.spec.containers[0].image: Required value",
            reason,
        ).with_code(code))))
    }

    #[test]
    fn only_an_invalid_object_is_a_spec_problem_other_refusals_pass() {
        assert!(
            refused(422, "Invalid")
                .invalid_object()
                .is_some_and(|m| m.contains("containers[0].image"))
        );
        assert!(refused(400, "BadRequest").invalid_object().is_some());
        for (code, reason) in [
            (403, "Forbidden"),
            (409, "Conflict"),
            (500, "InternalError"),
            (504, "Timeout"),
        ] {
            assert_eq!(refused(code, reason).invalid_object(), None, "{code}");
        }
    }
}

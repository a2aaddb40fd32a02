//! Why a run stopped: a reason the operator acts on and a message a person reads.

use ciclo_core::train_result::TrainFailureReason;

/// A run's failure, carried up to the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub reason: TrainFailureReason,
    pub message: String,
}

impl Failed {
    pub fn new(reason: TrainFailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(TrainFailureReason::InvalidSpec, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(TrainFailureReason::DatasetUnavailable, message)
    }

    pub fn changed(message: impl Into<String>) -> Self {
        Self::new(TrainFailureReason::DatasetChanged, message)
    }

    pub fn output(message: impl Into<String>) -> Self {
        Self::new(TrainFailureReason::OutputUnavailable, message)
    }

    pub fn training(message: impl Into<String>) -> Self {
        Self::new(TrainFailureReason::TrainingFailed, message)
    }
}

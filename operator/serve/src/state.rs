//! What every request handler shares: the model (once it is loaded), whether the server is
//! draining, the limits, and the metrics.

use crate::args::Format;
use crate::errors::ApiError;
use crate::metrics::{Metrics, ModelLabels};
use crate::model::{Loaded, Runtime};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub(crate) struct State {
    /// The name clients address the model by.
    pub name: String,
    pub version: Option<String>,
    pub max_body_bytes: usize,
    pub metrics: Arc<Metrics>,
    model: OnceLock<Loaded>,
    draining: AtomicBool,
    /// Inference requests being answered, and the most at once.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    /// Where sampled requests go, when they are captured.
    pub capture: OnceLock<crate::capture::Capture>,
}

/// An inference request admitted: counted until it is dropped.
pub(crate) struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl State {
    pub fn new(
        name: String,
        version: Option<String>,
        max_body_bytes: usize,
        max_in_flight: usize,
    ) -> Self {
        Self {
            name,
            version,
            max_body_bytes,
            metrics: Arc::new(Metrics::default()),
            model: OnceLock::new(),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            max_in_flight,
            capture: OnceLock::new(),
        }
    }

    /// Admits one more inference request, or refuses it (503, `Retry-After`) when the most
    /// at once are being answered.
    pub fn admit(&self) -> Result<Admitted<'_>, ApiError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(&self.in_flight);
        if before >= self.max_in_flight {
            drop(admitted);
            return Err(ApiError::overloaded(self.max_in_flight));
        }
        Ok(admitted)
    }

    /// Makes the model servable (and the server ready, unless it is already draining); with
    /// the training data's `profile`, its inputs are counted into their columns' bins from
    /// the first request on.
    pub fn set_loaded(
        &self,
        runtime: Runtime,
        format: Format,
        digest: String,
        profile: Option<&ciclo_profile::Profile>,
    ) {
        let stats = self.metrics.model_loaded(
            ModelLabels {
                name: self.name.clone(),
                version: self.version.clone().unwrap_or_default(),
                format: format.name().into(),
                digest: digest.clone(),
            },
            &runtime.input_names(),
        );
        if let Some(profile) = profile {
            let inputs = stats.set_baselines(profile);
            if inputs.is_empty() {
                tracing::warn!(
                    "no input is named like a numeric column of the training data's profile: no skew counts"
                );
            } else {
                tracing::info!(?inputs, "counting inputs into the training data's bins");
            }
        }
        let features = runtime.feature_names().map(Arc::from);
        let loaded = Loaded {
            runtime,
            format,
            digest,
            stats,
            features,
        };
        if self.model.set(loaded).is_ok() && !self.is_draining() {
            self.metrics.ready.set(1);
        }
    }

    /// Offers an answered request to the capture, when [`crate::capture::answering`] picked
    /// it: its tensors move there, no copy.
    pub fn capture_answered(
        &self,
        picked: Option<(&crate::capture::Capture, String)>,
        loaded: &Loaded,
        inputs: Vec<crate::tensor::Tensor>,
        outputs: Vec<crate::tensor::Output>,
        rows: usize,
    ) {
        if let Some((capture, id)) = picked {
            capture.offer(crate::capture::Captured::request(
                id,
                self.version.clone(),
                loaded.features.clone(),
                inputs,
                outputs,
                rows,
            ));
        }
    }

    /// From now on the server says it is not ready; it still answers everything else.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.metrics.ready.set(0);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Ready: loaded and not draining; otherwise why not.
    pub fn ready(&self) -> Result<(), String> {
        if self.is_draining() {
            Err("the server is shutting down".into())
        } else if self.model.get().is_none() {
            Err(format!("model {:?} is still loading", self.name))
        } else {
            Ok(())
        }
    }

    /// The model, for inference: 503 while it loads. A draining server still infers.
    pub fn loaded(&self) -> Result<&Loaded, ApiError> {
        self.model
            .get()
            .ok_or_else(|| ApiError::unavailable(format!("model {:?} is still loading", self.name)))
    }

    /// 404 unless `name` (and `version`, when the path has one) are the ones served.
    pub fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ApiError> {
        if name != self.name {
            return Err(ApiError::not_found(format!(
                "unknown model {name:?}; this server serves {:?}",
                self.name
            )));
        }
        match (version, self.version.as_deref()) {
            (Some(asked), Some(served)) if asked == served => Ok(()),
            (Some(asked), served) => Err(ApiError::not_found(format!(
                "model {name:?} has no version {asked:?}; this server serves {}",
                served.map_or("no numbered version".to_string(), |v| format!(
                    "version {v:?}"
                ))
            ))),
            (None, _) => Ok(()),
        }
    }
}

//! The ECS API as the controller uses it, in the project's own types. Two implementations: the twin (in-process
//! simulation, `crate::twin`) and `aws-sdk-ecs` (the [`sdk`] module, the only one that imports it).
//!
//! Methods return futures that are `Send`, so the controller can run on a multi-threaded runtime.

pub mod limit;
pub mod sdk;

use std::future::Future;

use crate::aws::call::{CallError, Detail};
use crate::model::Snapshot;

/// What an ECS call can fail with. Each variant holds its text in a [`Detail`], with the failed AWS call behind it
/// when there was one ([`EcsError::call`]); `Detail` reads as its text, as the `String` it replaces did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    /// The request was refused as invalid (AWS's `InvalidParameterException`).
    #[error("invalid request: {0}")]
    Invalid(Detail),
    /// The thing named does not exist.
    #[error("not found: {0}")]
    NotFound(Detail),
    /// Throttled; try again later.
    #[error("throttled: {0}")]
    Throttled(Detail),
    /// A mutation may or may not have happened (timeout, 5xx): re-read before deciding. Only mutations have an
    /// unknown outcome; a read that fails is [`EcsError::Unavailable`].
    #[error("outcome unknown: {0}")]
    Unknown(Detail),
    /// A read failed (timeout, connection, 5xx): nothing was changed, and nothing is decided on it.
    #[error("request failed: {0}")]
    Unavailable(Detail),
    /// The AWS configuration is missing or wrong (Region, credentials, endpoint): nothing works until it is set.
    #[error(transparent)]
    Config(crate::aws::ConfigError),
    /// An observation came back with `failures[]` or a missing page: nothing may be decided on it.
    #[error("incomplete observation: {0}")]
    Incomplete(Detail),
}

impl EcsError {
    /// The failed AWS call behind this error (the SDK's error is its source), if there was one.
    pub fn call(&self) -> Option<&CallError> {
        match self {
            EcsError::Invalid(d)
            | EcsError::NotFound(d)
            | EcsError::Throttled(d)
            | EcsError::Unknown(d)
            | EcsError::Unavailable(d)
            | EcsError::Incomplete(d) => d.call(),
            EcsError::Config(_) => None,
        }
    }

    /// The same error, naming what the call was about (`… (task definition arn:…)`).
    pub fn about(self, what: &str) -> EcsError {
        let name = |d: Detail| {
            let text = format!("{} ({what})", d.as_str());
            d.reworded(text)
        };
        match self {
            EcsError::Invalid(d) => EcsError::Invalid(name(d)),
            EcsError::NotFound(d) => EcsError::NotFound(name(d)),
            EcsError::Throttled(d) => EcsError::Throttled(name(d)),
            EcsError::Unknown(d) => EcsError::Unknown(name(d)),
            EcsError::Unavailable(d) => EcsError::Unavailable(name(d)),
            EcsError::Incomplete(d) => EcsError::Incomplete(name(d)),
            e @ EcsError::Config(_) => e,
        }
    }

    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            EcsError::Invalid(_) => "invalid",
            EcsError::NotFound(_) => "not_found",
            EcsError::Throttled(_) => "throttled",
            EcsError::Unknown(_) => "unknown",
            EcsError::Unavailable(_) => "unavailable",
            EcsError::Config(e) => e.label(),
            EcsError::Incomplete(_) => "incomplete",
        }
    }
}

/// The two states `UpdateContainerInstancesState` can set (docs/ecs.md: Draining).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Active,
    Draining,
}

/// Observe a cluster and act on it.
pub trait EcsApi {
    /// The whole cluster, task scale-in protection included, complete or not at all.
    fn observe(&self) -> impl Future<Output = Result<Snapshot, EcsError>> + Send;
    /// [`EcsApi::observe`], for a reader that does not change what it gets: an implementation holding the cluster in
    /// memory (the twin) hands out its current view without copying it.
    fn observe_shared(&self) -> impl Future<Output = Result<std::sync::Arc<Snapshot>, EcsError>> + Send
    where
        Self: Sync,
    {
        async { self.observe().await.map(std::sync::Arc::new) }
    }
    /// `StopTask`; `reason` becomes the task's `stoppedReason` (the controller puts its action id there).
    fn stop_task(&self, task_arn: &str, reason: &str) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// `UpdateService` with `forceNewDeployment`.
    fn force_new_deployment(&self, service: &str) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// `UpdateContainerInstancesState` for one instance.
    fn set_instance_state(
        &self,
        container_instance_arn: &str,
        state: InstanceState,
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
}

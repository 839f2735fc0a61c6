//! Crash points, built only with the `crash-points` feature (off by default): the crash-recovery tests stop a
//! controller dead at a point of its first action through the hidden `--crash-at` flag of `run` and `once`, to show
//! that the next leader settles what the dead one left. A build without the feature has neither the flag nor the
//! abort.

use super::Controller;

/// Where the crash tests stop a controller dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The action is claimed in the ledger, nothing sent to ECS.
    AfterClaim,
    /// ECS has the action, the ledger still says claimed.
    AfterAct,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterClaim => "after-claim",
            CrashPoint::AfterAct => "after-act",
        }
    }
}

impl std::str::FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "after-claim" => Ok(CrashPoint::AfterClaim),
            "after-act" => Ok(CrashPoint::AfterAct),
            _ => Err(format!("{s:?}: expected after-claim or after-act")),
        }
    }
}

impl<E, L> Controller<'_, E, L> {
    /// Aborts the process at `point` of the first action (hidden `--crash-at`, for the crash-recovery tests).
    pub fn crash_at(mut self, point: Option<CrashPoint>) -> Self {
        self.crash_at = point;
        self
    }

    /// Aborts the process here if this is where it was asked to stop dead.
    pub(super) fn crash_if_at(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            tracing::error!("crash-at {}: aborting as asked", point.name());
            std::process::abort()
        }
    }
}

//! Actual use of instances (docs/ecs.md: Container Insights): what CloudWatch Container Insights measured, as a fraction of each
//! instance's capacity. Missing or stale data is unknown, never zero.
//!
//! [`UtilizationSource`] fetches it; [`WithUtilization`] puts it into every observation of an [`EcsApi`], so the
//! controller sees one snapshot. The reduction from datapoints to one number per instance is [`summarize`], pure.

pub mod cloudwatch;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::aws::call::Detail;
use crate::ecs::{EcsApi, EcsError, InstanceState};
use crate::model::{Snapshot, Utilization};

/// How datapoints become one value: the mean over `window`, ending at the newest datapoint, which must be at most
/// `stale_after` old (policy `spec.utilization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub window: Duration,
    pub stale_after: Duration,
}

impl Window {
    /// From a policy.
    pub fn of(policy: &crate::policy::Policy) -> Window {
        Window {
            window: policy.utilization.window,
            stale_after: policy.utilization.stale_after,
        }
    }

    /// How far back to ask for datapoints.
    pub fn lookback(&self) -> Duration {
        self.window.max(self.stale_after)
    }
}

/// One number from `(timestamp, percent)` datapoints: the mean over the window ending at the newest datapoint, as a
/// fraction clamped to 0..=1; `None` when there is no datapoint, or the newest is older than `stale_after`.
///
/// The window is anchored at the newest datapoint rather than at `now` because Container Insights publishes a minute
/// or two late: a window ending at `now` would often hold nothing while the data is perfectly fresh.
pub fn summarize(points: &[(DateTime<Utc>, f64)], now: DateTime<Utc>, window: Window) -> Option<f64> {
    let finite = || points.iter().filter(|(_, v)| v.is_finite());
    let newest = finite().map(|(t, _)| *t).max()?;
    let stale_after = chrono::Duration::from_std(window.stale_after).ok()?;
    if now - newest > stale_after {
        return None;
    }
    let from = newest - chrono::Duration::from_std(window.window).ok()?;
    let (sum, n) = finite()
        .filter(|(t, _)| *t > from || *t == newest)
        .fold((0.0, 0u32), |(s, n), (_, v)| (s + v, n + 1));
    Some((sum / f64::from(n) / 100.0).clamp(0.0, 1.0))
}

/// Why utilisation could not be read at all (individual missing instances are not errors: they are unknown), with
/// the failed AWS call behind it when there was one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub Detail);

/// Where actual use comes from.
pub trait UtilizationSource {
    /// Utilisation of the snapshot's instances at `now`, by container instance ARN; instances without data are
    /// absent.
    fn fetch(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<BTreeMap<String, Utilization>, SourceError>> + Send;
}

/// An [`EcsApi`] whose observations carry utilisation from a [`UtilizationSource`]. A source that fails makes the
/// observation incomplete: a policy that balances on actual use must not act on none.
pub struct WithUtilization<E, U> {
    ecs: E,
    source: U,
}

impl<E, U> WithUtilization<E, U> {
    pub fn new(ecs: E, source: U) -> Self {
        WithUtilization { ecs, source }
    }
}

impl<E: EcsApi + Sync, U: UtilizationSource + Sync> EcsApi for WithUtilization<E, U> {
    async fn observe(&self) -> Result<Snapshot, EcsError> {
        let mut snapshot = self.ecs.observe().await?;
        let now = snapshot.captured_at.unwrap_or_else(Utc::now);
        let found = self.source.fetch(&snapshot, now).await.map_err(|SourceError(e)| {
            let text = format!("utilization: {e}");
            EcsError::Incomplete(e.reworded(text))
        })?;
        snapshot.utilization.extend(found);
        Ok(snapshot)
    }

    fn stop_task(&self, task_arn: &str, reason: &str) -> impl Future<Output = Result<(), EcsError>> + Send {
        self.ecs.stop_task(task_arn, reason)
    }

    fn force_new_deployment(&self, service: &str) -> impl Future<Output = Result<(), EcsError>> + Send {
        self.ecs.force_new_deployment(service)
    }

    fn set_instance_state(&self, arn: &str, state: InstanceState) -> impl Future<Output = Result<(), EcsError>> + Send {
        self.ecs.set_instance_state(arn, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    const FIVE_TEN: Window = Window {
        window: Duration::from_secs(300),
        stale_after: Duration::from_secs(600),
    };

    #[test]
    fn the_mean_over_the_window_ending_at_the_newest_point_as_a_fraction() {
        // Points at minutes 0..=9; the newest is minute 9, so the window (4, 9] holds minutes 5..=9.
        let points: Vec<_> = (0..10).map(|m| (at(m), f64::from(m as i32) * 10.0)).collect();
        let got = summarize(&points, at(11), FIVE_TEN).unwrap();
        assert!((got - 0.7).abs() < 1e-12, "{got}");
    }

    #[test]
    fn no_points_or_stale_points_are_unknown_never_zero() {
        assert_eq!(summarize(&[], at(0), FIVE_TEN), None);
        assert_eq!(
            summarize(&[(at(0), 50.0)], at(10), FIVE_TEN),
            Some(0.5),
            "exactly stale_after old is fresh"
        );
        assert_eq!(summarize(&[(at(0), 50.0)], at(11), FIVE_TEN), None);
        assert_eq!(summarize(&[(at(0), f64::NAN)], at(0), FIVE_TEN), None);
    }

    #[test]
    fn values_are_clamped_to_the_instance() {
        assert_eq!(summarize(&[(at(0), 130.0)], at(0), FIVE_TEN), Some(1.0));
        assert_eq!(summarize(&[(at(0), -3.0)], at(0), FIVE_TEN), Some(0.0));
    }
}

//! What the planner needs to know from the ledger: work in flight, cooldowns, and recent restarts. Plain data, so
//! the planner stays pure; the ledger (memory or DynamoDB) builds it, and `plan --snapshot` uses an empty one.

use chrono::{DateTime, Duration, Utc};

/// A move that was claimed and has not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InFlight {
    /// A task being stopped (its replacement not yet running).
    StopTask { task_arn: String, service: String },
    /// A forced deployment still rolling.
    Redeploy { service: String },
    /// An instance this controller set DRAINING.
    Drain { container_instance_arn: String },
}

/// The ledger as the planner sees it at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerView {
    pub in_flight: Vec<InFlight>,
    /// Service name → the end of its cooldown.
    pub service_cooldowns: Vec<(String, DateTime<Utc>)>,
    /// Container instance ARN → the end of its cooldown.
    pub instance_cooldowns: Vec<(String, DateTime<Utc>)>,
    /// When tasks were restarted by this controller, and how many, for the rolling per-hour budget.
    pub restarts: Vec<(DateTime<Utc>, u32)>,
    /// Tasks whose stop was claimed and then failed or never reached ECS: the action's id is spent (ids are
    /// deterministic), so planning that stop again would only be refused at the claim.
    pub attempted_tasks: Vec<String>,
}

impl LedgerView {
    /// Tasks restarted in the hour before `now`.
    pub fn restarted_in_last_hour(&self, now: DateTime<Utc>) -> u32 {
        let since = now - Duration::hours(1);
        self.restarts
            .iter()
            .filter(|(t, _)| *t > since && *t <= now)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn service_cooling_until(&self, service: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.service_cooldowns
            .iter()
            .filter(|(s, until)| s == service && *until > now)
            .map(|(_, until)| *until)
            .max()
    }

    pub fn instance_cooling_until(&self, arn: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.instance_cooldowns
            .iter()
            .filter(|(a, until)| a == arn && *until > now)
            .map(|(_, until)| *until)
            .max()
    }

    /// Tasks of the service with a stop in flight (they count against its floor and per-service budget).
    pub fn stops_in_flight(&self, service: &str) -> u32 {
        let n = self
            .in_flight
            .iter()
            .filter(|f| matches!(f, InFlight::StopTask { service: s, .. } if s == service))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn redeploy_in_flight(&self, service: &str) -> bool {
        self.in_flight
            .iter()
            .any(|f| matches!(f, InFlight::Redeploy { service: s } if s == service))
    }

    pub fn task_attempted(&self, task_arn: &str) -> bool {
        self.attempted_tasks.iter().any(|t| t == task_arn)
    }

    pub fn task_in_flight(&self, task_arn: &str) -> bool {
        self.in_flight
            .iter()
            .any(|f| matches!(f, InFlight::StopTask { task_arn: t, .. } if t == task_arn))
    }

    pub fn drains_in_flight(&self) -> u32 {
        let n = self
            .in_flight
            .iter()
            .filter(|f| matches!(f, InFlight::Drain { .. }))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub fn drain_in_flight(&self, arn: &str) -> bool {
        self.in_flight
            .iter()
            .any(|f| matches!(f, InFlight::Drain { container_instance_arn: a } if a == arn))
    }
}

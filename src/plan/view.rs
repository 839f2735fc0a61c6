//! What the planner needs to know from the ledger: work in flight, cooldowns, and recent restarts. Plain data, so
//! the planner stays pure; the ledger (memory or DynamoDB) builds it, and `plan --snapshot` uses an empty one.

use chrono::{DateTime, Duration, Utc};

use super::safety::SkipReason;

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
    /// Ids ([`crate::moves::Move::id`]) of moves claimed and then failed or never sent to ECS: the id is spent
    /// (ids are deterministic), so planning that move again would only be refused at the claim, every cycle, while
    /// holding budget other moves could use. A new id (a new deployment of the service, a new instance version)
    /// is a new move.
    pub attempted: Vec<String>,
    /// Ledger items that name a move but cannot be read, and may be in flight: what they name is left alone, and
    /// one that names nothing stops the planner altogether (fail closed).
    pub unreadable: Vec<UnreadableRecord>,
}

/// A ledger item that cannot be read as a move, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    /// The item's key (`action#<id>`), to name it.
    pub key: String,
    /// What it names, as far as that can be read: task, service or instance ARNs or ids, service names.
    pub targets: Vec<String>,
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

    /// Whether the move with this id was claimed before and failed or never reached ECS.
    pub fn attempted(&self, id: &str) -> bool {
        self.attempted.iter().any(|a| a == id)
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

    /// Whether the task may be stopped: `Err` when a stop of it is in flight or an unreadable ledger item names it.
    pub fn task_free(&self, task_arn: &str) -> Result<(), SkipReason> {
        if self.task_in_flight(task_arn) {
            return Err(SkipReason::StopInFlight);
        }
        self.not_named(task_arn)
    }

    /// Whether the service's tasks may be moved at all: `Err` when a redeploy of it is in flight (the rollout
    /// replaces them) or an unreadable ledger item names it.
    pub fn service_free(&self, service: &str) -> Result<(), SkipReason> {
        if self.redeploy_in_flight(service) {
            return Err(SkipReason::ServiceRedeploying);
        }
        self.not_named(service)
    }

    /// Whether the service may be redeployed: `Err` when a redeploy of it is already in flight or an unreadable
    /// ledger item names it.
    pub fn redeploy_free(&self, service: &str) -> Result<(), SkipReason> {
        if self.redeploy_in_flight(service) {
            return Err(SkipReason::RedeployInFlight);
        }
        self.not_named(service)
    }

    /// Whether the instance may be drained: `Err` when a drain of it is already in flight or an unreadable ledger
    /// item names it.
    pub fn instance_free(&self, arn: &str) -> Result<(), SkipReason> {
        if self.drain_in_flight(arn) {
            return Err(SkipReason::DrainInFlight);
        }
        self.not_named(arn)
    }

    fn not_named(&self, target: &str) -> Result<(), SkipReason> {
        match self.unreadable_naming(target) {
            Some(key) => Err(SkipReason::UnreadableRecord(key.to_owned())),
            None => Ok(()),
        }
    }

    /// The key of an unreadable ledger item that names `target` (an ARN, its last part, or a service name).
    pub fn unreadable_naming(&self, target: &str) -> Option<&str> {
        let id = target.rsplit('/').next().unwrap_or(target);
        self.unreadable
            .iter()
            .find(|u| u.targets.iter().any(|t| t == target || t == id))
            .map(|u| u.key.as_str())
    }

    /// The key of an unreadable ledger item that names no target at all: nothing may be planned while it is there.
    pub fn unreadable_untargeted(&self) -> Option<&str> {
        self.unreadable
            .iter()
            .find(|u| u.targets.is_empty())
            .map(|u| u.key.as_str())
    }

    pub fn drain_in_flight(&self, arn: &str) -> bool {
        self.in_flight
            .iter()
            .any(|f| matches!(f, InFlight::Drain { container_instance_arn: a } if a == arn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_move_in_flight_refuses_with_its_own_reason() {
        let view = LedgerView {
            in_flight: vec![
                InFlight::StopTask {
                    task_arn: "task/t".into(),
                    service: "web".into(),
                },
                InFlight::Redeploy { service: "api".into() },
                InFlight::Drain {
                    container_instance_arn: "container-instance/i".into(),
                },
            ],
            ..LedgerView::default()
        };
        assert_eq!(view.task_free("task/t"), Err(SkipReason::StopInFlight));
        assert_eq!(view.service_free("api"), Err(SkipReason::ServiceRedeploying));
        assert_eq!(view.redeploy_free("api"), Err(SkipReason::RedeployInFlight));
        assert_eq!(
            view.instance_free("container-instance/i"),
            Err(SkipReason::DrainInFlight)
        );
        assert_eq!(view.task_free("task/other"), Ok(()));
        assert_eq!(
            view.service_free("web"),
            Ok(()),
            "a stop in flight does not hold up the whole service"
        );
        assert_eq!(view.redeploy_free("web"), Ok(()));
        assert_eq!(view.instance_free("container-instance/j"), Ok(()));
    }
}

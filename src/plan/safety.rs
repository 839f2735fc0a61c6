//! Every reason the planner refuses a move, in one place (descheduler's `EvictPod` shape): typed, with a stable
//! label for counting, and a sentence for people.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Cluster, ContainerInstance, DeploymentStatus, RolloutState, SchedulingStrategy, Service};
use crate::policy::Policy;

use super::view::LedgerView;

/// Why a task, service, instance or move was left alone.
#[derive(Debug, Clone, PartialEq)]
pub enum SkipReason {
    /// Daemon tasks run one per instance; moving them means nothing (docs/ecs.md: Services and tasks not to touch).
    Daemon,
    /// Not started by a service: nothing would replace it.
    Standalone,
    /// The policy's `exclude` matched.
    Excluded(String),
    /// Task scale-in protection is on (docs/ecs.md: Task scale-in protection).
    Protected,
    /// A deployment in progress, a failed rollout, or fewer tasks running than desired.
    NotSteady(String),
    /// A task of the service points at something the snapshot does not hold.
    Inconsistent,
    /// The placement engine cannot predict where its tasks go.
    Unpredictable(String),
    /// The instance is not a valid source: not ACTIVE, agent disconnected, excluded, or in its grace period.
    InstanceNotScored(String),
    /// Stopping would take the service below `ceil(minimumHealthyPercent × desired / 100)`.
    BelowFloor {
        running: u32,
        floor: u32,
    },
    /// The policy's `budgets.perService` for this service is used up.
    ServiceBudget {
        limit: u32,
    },
    /// `budgets.maxUnavailable` is used up by work in flight and moves planned this cycle.
    Unavailable {
        limit: u32,
    },
    HourBudget {
        limit: u32,
    },
    ConcurrentDrains {
        limit: u32,
    },
    ServiceCoolingDown(DateTime<Utc>),
    InstanceCoolingDown(DateTime<Utc>),
    /// A stop of this task is already in flight.
    StopInFlight,
    /// A redeploy of this service is already in flight.
    RedeployInFlight,
    /// A drain of this instance is already in flight.
    DrainInFlight,
    /// A redeploy of the service is in flight: its tasks are the rollout's to replace, so no other move touches them.
    ServiceRedeploying,
    /// A ledger item naming this target cannot be read (it may be a move in flight); the key names the item.
    UnreadableRecord(String),
    /// A move planned earlier in this cycle already moves this task or drains this instance.
    Planned,
    /// A redeploy of the task's service is planned this cycle: it replaces every task anyway.
    RedeployPlanned,
    /// The task's instance is planned to be drained this cycle.
    SourceDrained,
    /// A drain planned this cycle replaces tasks of the service, and may take it down to its floor.
    DrainPlanned,
    /// A redeploy of the service is worth more than the run of stops that would move its tasks one by one.
    RedeployPreferred,
    /// An earlier stop of this task failed or never reached ECS; its action id is spent.
    Attempted,
    /// No instance could take the replacement: it would stay PENDING.
    NoLanding,
    /// The replacement can only land back on the instance it left (the binpack trap, `docs/ecs.md`).
    LandsOnSource,
    /// On average over the instances ECS could pick, the move would not lower the score.
    NoGain,
    /// An instance ECS could pick is busier than the one the task leaves: the unluckiest outcome makes things worse.
    HotterLanding {
        via: String,
    },
    /// The service has AZ rebalancing ENABLED and the replacement could land in another AZ.
    AzRebalancing {
        from: String,
        to: String,
    },
    /// What the task contributes to the metric is unknown (no reservation stated, or no utilisation data).
    UnknownLoad,
    /// A drain cannot be started or could not finish.
    DrainBlocked(String),
    /// A forced deployment is not predictable or would not help.
    RedeployBlocked(String),
}

impl SkipReason {
    /// A stable, low-cardinality name, for counting and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            SkipReason::Daemon => "daemon",
            SkipReason::Standalone => "standalone",
            SkipReason::Excluded(_) => "excluded",
            SkipReason::Protected => "protected",
            SkipReason::NotSteady(_) => "not-steady",
            SkipReason::Inconsistent => "inconsistent",
            SkipReason::Unpredictable(_) => "unpredictable",
            SkipReason::InstanceNotScored(_) => "instance-not-scored",
            SkipReason::BelowFloor { .. } => "below-floor",
            SkipReason::ServiceBudget { .. } => "service-budget",
            SkipReason::Unavailable { .. } => "max-unavailable",
            SkipReason::HourBudget { .. } => "hour-budget",
            SkipReason::ConcurrentDrains { .. } => "concurrent-drains",
            SkipReason::ServiceCoolingDown(_) => "service-cooldown",
            SkipReason::InstanceCoolingDown(_) => "instance-cooldown",
            SkipReason::StopInFlight => "stop-in-flight",
            SkipReason::RedeployInFlight => "redeploy-in-flight",
            SkipReason::DrainInFlight => "drain-in-flight",
            SkipReason::ServiceRedeploying => "service-redeploying",
            SkipReason::UnreadableRecord(_) => "unreadable-record",
            SkipReason::Planned => "planned",
            SkipReason::RedeployPlanned => "redeploy-planned",
            SkipReason::SourceDrained => "source-drained",
            SkipReason::DrainPlanned => "drain-planned",
            SkipReason::RedeployPreferred => "redeploy-preferred",
            SkipReason::Attempted => "attempted",
            SkipReason::NoLanding => "no-landing",
            SkipReason::LandsOnSource => "lands-on-source",
            SkipReason::NoGain => "no-gain",
            SkipReason::HotterLanding { .. } => "hotter-landing",
            SkipReason::AzRebalancing { .. } => "az-rebalancing",
            SkipReason::UnknownLoad => "unknown-load",
            SkipReason::DrainBlocked(_) => "drain-blocked",
            SkipReason::RedeployBlocked(_) => "redeploy-blocked",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Daemon => f.write_str("daemon service: one task per instance, nothing to move"),
            SkipReason::Standalone => f.write_str("standalone task: no service would replace it"),
            SkipReason::Excluded(why) => write!(f, "excluded by the policy: {why}"),
            SkipReason::Protected => f.write_str("task scale-in protection is on"),
            SkipReason::NotSteady(why) => write!(f, "service not steady: {why}"),
            SkipReason::Inconsistent => {
                f.write_str("a task of the service points at something the snapshot does not hold")
            }
            SkipReason::Unpredictable(why) => write!(f, "placement cannot be predicted: {why}"),
            SkipReason::InstanceNotScored(why) => write!(f, "instance not balanced: {why}"),
            SkipReason::BelowFloor { running, floor } => write!(
                f,
                "stopping would leave {} running, below the service's healthy floor of {floor}",
                running.saturating_sub(1)
            ),
            SkipReason::ServiceBudget { limit } => {
                write!(f, "the policy allows {limit} task(s) of this service disrupted at once")
            }
            SkipReason::Unavailable { limit } => write!(
                f,
                "budgets.maxUnavailable ({limit}) is used by work in flight and moves planned this cycle"
            ),
            SkipReason::HourBudget { limit } => write!(f, "the hourly budget of {limit} restarted task(s) is used"),
            SkipReason::ConcurrentDrains { limit } => write!(f, "{limit} drain(s) already in flight"),
            SkipReason::ServiceCoolingDown(until) => write!(f, "service cooling down until {}", until.to_rfc3339()),
            SkipReason::InstanceCoolingDown(until) => {
                write!(f, "instance cooling down until {}", until.to_rfc3339())
            }
            SkipReason::StopInFlight => f.write_str("a stop of this task is already in flight"),
            SkipReason::RedeployInFlight => f.write_str("a redeploy of this service is already in flight"),
            SkipReason::DrainInFlight => f.write_str("a drain of this instance is already in flight"),
            SkipReason::ServiceRedeploying => {
                f.write_str("a redeploy of this service is in flight: its tasks are left to the rollout")
            }
            SkipReason::UnreadableRecord(key) => write!(
                f,
                "ledger item {key} names it and cannot be read (see `ecs-rebalancer status`); left alone until the \
                 item is repaired or deleted"
            ),
            SkipReason::Planned => f.write_str("a move planned earlier in this cycle already moves it"),
            SkipReason::RedeployPlanned => f.write_str("a redeploy of its service is planned this cycle"),
            SkipReason::SourceDrained => f.write_str("its instance is planned to be drained this cycle"),
            SkipReason::DrainPlanned => {
                f.write_str("a drain planned this cycle replaces tasks of its service and may take it to its floor")
            }
            SkipReason::RedeployPreferred => f.write_str(
                "a redeploy of its service is worth more per restart than stopping its tasks one by one, or goes \
                     further than those stops, which get stuck",
            ),
            SkipReason::Attempted => f.write_str(
                "this move was claimed before and failed or never reached ECS; its id is spent until the task, the \
                 service's deployment or the instance's version changes",
            ),
            SkipReason::NoLanding => f.write_str("no instance could take the replacement; it would stay PENDING"),
            SkipReason::LandsOnSource => f.write_str("the replacement would land back on the same instance"),
            SkipReason::NoGain => {
                f.write_str("on average over the instances ECS could pick, the balance would not improve")
            }
            SkipReason::HotterLanding { via } => write!(
                f,
                "the replacement could land on {via}, which is busier than the instance it leaves"
            ),
            SkipReason::AzRebalancing { from, to } => write!(
                f,
                "AZ rebalancing is ENABLED for the service and the replacement could move from {from} to {to}"
            ),
            SkipReason::UnknownLoad => f.write_str("what the task adds to the metric is unknown"),
            SkipReason::DrainBlocked(why) => write!(f, "drain not possible: {why}"),
            SkipReason::RedeployBlocked(why) => write!(f, "redeploy not useful: {why}"),
        }
    }
}

/// A target the planner left alone, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skip {
    /// `task/…`, `service/…` or `container-instance/…` ARN, or a service name.
    pub target: String,
    pub reason: String,
    /// The reason's stable label.
    pub label: &'static str,
}

/// Refusals that time, or the end of work in flight, lifts: a cooldown, a budget, a move under way. A cycle whose
/// every refusal is one of these is waiting, not stuck.
pub const WAITING: [&str; 10] = [
    "service-cooldown",
    "instance-cooldown",
    "stop-in-flight",
    "redeploy-in-flight",
    "drain-in-flight",
    "service-redeploying",
    "max-unavailable",
    "service-budget",
    "hour-budget",
    "concurrent-drains",
];

/// ECS's healthy floor for a service: `ceil(minimumHealthyPercent × desired / 100)`.
pub fn floor(service: &Service) -> u32 {
    let product = u64::from(service.minimum_healthy_percent()) * u64::from(service.desired_count);
    u32::try_from(product.div_ceil(100)).unwrap_or(u32::MAX)
}

/// Whether ECS can neither start a replacement first (its ceiling is the desired count) nor stop a task first (its
/// floor is): then a drain leaves the service's tasks where they are (`docs/ecs.md`, draining).
pub fn no_room_to_move(service: &Service) -> bool {
    !service.starts_first() && floor(service) >= service.desired_count
}

/// Whether a service's tasks may be moved at all this cycle; checks that do not depend on a particular task.
pub fn check_service(
    cluster: &Cluster,
    service: &Service,
    policy: &Policy,
    ledger: &LedgerView,
    now: DateTime<Utc>,
) -> Result<(), SkipReason> {
    if service.scheduling_strategy == SchedulingStrategy::Daemon {
        return Err(SkipReason::Daemon);
    }
    if let Some(why) = policy.exclude.service_reason(service) {
        return Err(SkipReason::Excluded(why));
    }
    if service.status != "ACTIVE" {
        return Err(SkipReason::NotSteady(format!("status {}", service.status)));
    }
    // Blue/green (CODE_DEPLOY) and EXTERNAL services run their tasks in task sets another controller owns; the
    // rolling rules the plan relies on (docs/ecs.md) do not describe them, so they are left alone.
    if let Some(kind) = service
        .deployment_controller
        .as_ref()
        .map(|d| d.kind.as_str())
        .filter(|k| *k != "ECS")
    {
        return Err(SkipReason::NotSteady(format!(
            "deployment controller {kind}: its task sets belong to another controller"
        )));
    }
    let live: Vec<_> = service
        .deployments
        .iter()
        .filter(|d| d.status != DeploymentStatus::Inactive)
        .collect();
    if live.len() > 1 {
        return Err(SkipReason::NotSteady(format!("{} deployments in progress", live.len())));
    }
    if let Some(state) = live.first().and_then(|d| d.rollout_state.as_ref()) {
        if *state != RolloutState::Completed {
            return Err(SkipReason::NotSteady(format!("rollout {state}")));
        }
    }
    if service.running_count < service.desired_count {
        return Err(SkipReason::NotSteady(format!(
            "{} of {} tasks running",
            service.running_count, service.desired_count
        )));
    }
    // A drain (ours or anyone's) is replacing tasks of the service: ECS is below or above desired until it is done.
    if cluster.tasks_of(&service.service_name).any(|t| {
        t.desired_status != crate::model::TaskStatus::Stopped
            && t.container_instance_arn
                .as_deref()
                .and_then(|a| cluster.instance(a))
                .is_some_and(|i| i.status == crate::model::InstanceStatus::Draining)
    }) {
        return Err(SkipReason::NotSteady(
            "tasks on a DRAINING instance are being replaced".into(),
        ));
    }
    if !cluster.is_service_consistent(&service.service_name) {
        return Err(SkipReason::Inconsistent);
    }
    ledger.service_free(&service.service_name)?;
    if let Some(until) = ledger.service_cooling_until(&service.service_name, now) {
        return Err(SkipReason::ServiceCoolingDown(until));
    }
    Ok(())
}

/// Why an instance is not scored (and so neither a source nor a destination), if it is not.
pub fn instance_not_scored(instance: &ContainerInstance, policy: &Policy, now: DateTime<Utc>) -> Option<String> {
    if !instance.can_take_tasks() {
        return Some(if instance.agent_connected {
            format!("status {}", instance.status)
        } else {
            "agent disconnected".into()
        });
    }
    if let Some(why) = policy.exclude.instance_reason(instance) {
        return Some(why);
    }
    let grace = chrono::Duration::from_std(policy.cooldown.new_instance).unwrap_or(chrono::Duration::MAX);
    match instance.registered_at {
        Some(at) if !grace.is_zero() && now - at < grace => Some(format!(
            "registered {}s ago, within cooldown.newInstance",
            (now - at).num_seconds()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::SkipReason;

    /// One of every reason. The match makes a new variant a compile error here until it is listed.
    fn every_reason() -> Vec<SkipReason> {
        let at = chrono::DateTime::UNIX_EPOCH;
        let all = vec![
            SkipReason::Daemon,
            SkipReason::Standalone,
            SkipReason::Excluded(String::new()),
            SkipReason::Protected,
            SkipReason::NotSteady(String::new()),
            SkipReason::Inconsistent,
            SkipReason::Unpredictable(String::new()),
            SkipReason::InstanceNotScored(String::new()),
            SkipReason::BelowFloor { running: 1, floor: 1 },
            SkipReason::ServiceBudget { limit: 1 },
            SkipReason::Unavailable { limit: 1 },
            SkipReason::HourBudget { limit: 1 },
            SkipReason::ConcurrentDrains { limit: 1 },
            SkipReason::ServiceCoolingDown(at),
            SkipReason::InstanceCoolingDown(at),
            SkipReason::StopInFlight,
            SkipReason::RedeployInFlight,
            SkipReason::DrainInFlight,
            SkipReason::ServiceRedeploying,
            SkipReason::UnreadableRecord(String::new()),
            SkipReason::Planned,
            SkipReason::RedeployPlanned,
            SkipReason::SourceDrained,
            SkipReason::DrainPlanned,
            SkipReason::RedeployPreferred,
            SkipReason::Attempted,
            SkipReason::NoLanding,
            SkipReason::LandsOnSource,
            SkipReason::NoGain,
            SkipReason::HotterLanding { via: String::new() },
            SkipReason::AzRebalancing {
                from: String::new(),
                to: String::new(),
            },
            SkipReason::UnknownLoad,
            SkipReason::DrainBlocked(String::new()),
            SkipReason::RedeployBlocked(String::new()),
        ];
        for reason in &all {
            match reason {
                SkipReason::Daemon
                | SkipReason::Standalone
                | SkipReason::Excluded(_)
                | SkipReason::Protected
                | SkipReason::NotSteady(_)
                | SkipReason::Inconsistent
                | SkipReason::Unpredictable(_)
                | SkipReason::InstanceNotScored(_)
                | SkipReason::BelowFloor { .. }
                | SkipReason::ServiceBudget { .. }
                | SkipReason::Unavailable { .. }
                | SkipReason::HourBudget { .. }
                | SkipReason::ConcurrentDrains { .. }
                | SkipReason::ServiceCoolingDown(_)
                | SkipReason::InstanceCoolingDown(_)
                | SkipReason::StopInFlight
                | SkipReason::RedeployInFlight
                | SkipReason::DrainInFlight
                | SkipReason::ServiceRedeploying
                | SkipReason::UnreadableRecord(_)
                | SkipReason::Planned
                | SkipReason::RedeployPlanned
                | SkipReason::SourceDrained
                | SkipReason::DrainPlanned
                | SkipReason::RedeployPreferred
                | SkipReason::Attempted
                | SkipReason::NoLanding
                | SkipReason::LandsOnSource
                | SkipReason::NoGain
                | SkipReason::HotterLanding { .. }
                | SkipReason::AzRebalancing { .. }
                | SkipReason::UnknownLoad
                | SkipReason::DrainBlocked(_)
                | SkipReason::RedeployBlocked(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_label_is_distinct_and_in_the_table_of_docs_plan_md() {
        let doc = include_str!("../../docs/plan.md");
        let table: Vec<&str> = doc
            .lines()
            .skip_while(|l| !l.starts_with("| label |"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for reason in every_reason() {
            let label = reason.label();
            assert!(seen.insert(label), "{label} is the label of two reasons");
            let documented = table.iter().any(|row| {
                row.split('|')
                    .nth(1)
                    .is_some_and(|cell| cell.contains(&format!("`{label}`")))
            });
            assert!(documented, "docs/plan.md's table of labels does not list `{label}`");
        }
    }
}

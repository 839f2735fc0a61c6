//! The planner: one cycle's moves, each justified by a predicted gain, none of which can hurt a service. Pure:
//! `plan(&Cluster, &Policy, &LedgerView, now, Episode) -> Plan`, no clients, no clock, no randomness.
//!
//! - [`load`]: per-instance load, normalised for instance size, and the score.
//! - [`safety`]: every refusal as a typed [`safety::SkipReason`].
//! - [`search`]: candidate moves with their predicted landings, chosen greedily by predicted gain per restarted task.
//! - [`render`]: the `plan` command's table.
//! - [`view`]: what the planner reads from the ledger.

pub mod load;
pub mod render;
pub mod safety;
pub mod search;
pub mod view;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::Cluster;
use crate::policy::Policy;

pub use load::{InstanceLoad, LoadModel};
pub use safety::{Skip, SkipReason};
pub use view::{InFlight, LedgerView};

/// The hysteresis state the caller carries from cycle to cycle: once the score went above `trigger`, keep going
/// until it is at or below `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Episode {
    pub active: bool,
}

/// What a cycle concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The score is at or below the target (or below the trigger with no episode running).
    Balanced,
    /// Moves were planned.
    Planned,
    /// Above the threshold, but no move is both safe and predicted to help.
    NothingSafe,
    /// The cycle refused to plan (too much unknown utilisation).
    Halted,
}

/// One move, with its target, its reason and the instances ECS could put its replacement(s) on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedAction {
    /// `stop-task`, `redeploy-service` or `drain-instance`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_arn: Option<String>,
    /// The instance the task leaves (stop-task) or the instance drained (drain-instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    pub reason: String,
    /// Every instance ECS could place the replacement(s) on.
    pub predicted_landing: Vec<String>,
    pub tasks_restarted: u32,
    /// The predicted score after this move and every move before it: a stop's replacement on its worst landing,
    /// a redeploy's or a drain's replacements taking their candidates in turn.
    pub score_after: f64,
}

/// Scores and per-instance loads at one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadView {
    pub score: f64,
    pub instances: Vec<InstanceLoad>,
}

/// One cycle's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub cluster: String,
    pub policy: String,
    pub metric: String,
    pub mode: String,
    pub status: Status,
    /// Why the cycle ended where it did, in a sentence.
    pub summary: String,
    pub trigger: f64,
    pub target: f64,
    /// Whether the next cycle should keep rebalancing (the hysteresis state to carry).
    pub episode: bool,
    pub before: LoadView,
    /// The predicted state after every action (see [`PlannedAction::score_after`]).
    pub after: LoadView,
    pub actions: Vec<PlannedAction>,
    pub skipped: Vec<Skip>,
}

/// The score of a cluster under a policy at `now` (what [`Plan::before`] reports), without planning any move.
pub fn score(cluster: &Cluster, policy: &Policy, now: DateTime<Utc>) -> f64 {
    let scored = cluster
        .instances()
        .iter()
        .map(|i| safety::instance_not_scored(i, policy, now).is_none())
        .collect();
    LoadModel::new(cluster, policy.metric, scored).score()
}

/// Plans one cycle.
pub fn plan(cluster: &Cluster, policy: &Policy, ledger: &LedgerView, now: DateTime<Utc>, episode: Episode) -> Plan {
    search::Search::new(cluster, policy, ledger, now).run(episode)
}

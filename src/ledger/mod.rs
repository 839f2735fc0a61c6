//! The ledger: every move is recorded before it is made, so a crash, a restart or a second replica can neither lose
//! nor repeat it. The trait speaks in typed outcomes ([`Claim`]): "someone got there first" is a normal answer, not
//! an error. Implementations: [`memory::MemoryLedger`] now; DynamoDB with the production controller.
//!
//! Action ids are deterministic (see `reconcile::action_id`): the same move observed twice claims the same id.

pub mod memory;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::plan::LedgerView;

/// Where an action is in its life: `claimed → acting → done | failed | abandoned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionState {
    /// Recorded; not yet sent to ECS.
    Claimed,
    /// Sent to ECS; waiting for it to play out.
    Acting,
    /// Played out.
    Done,
    /// ECS refused it, or it did not play out in time.
    Failed,
    /// Given up before acting (the target changed under us).
    Abandoned,
}

impl ActionState {
    pub fn in_flight(self) -> bool {
        matches!(self, ActionState::Claimed | ActionState::Acting)
    }
}

/// One move, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    pub id: String,
    pub cluster: String,
    /// `stop-task`, `redeploy-service` or `drain-instance`.
    pub kind: String,
    /// The task ARN, service name or container instance ARN acted on.
    pub target: String,
    pub service: Option<String>,
    /// The instance a stopped task left, or the instance drained.
    pub instance: Option<String>,
    /// For a redeploy: the primary deployment it replaces.
    pub deployment_before: Option<String>,
    pub state: ActionState,
    pub claimed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub reason: String,
    pub predicted_landing: Vec<String>,
    pub tasks: u32,
    /// What really happened, once settled.
    pub outcome: Option<String>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Recorded now; go ahead.
    Claimed,
    /// The same id is already recorded (our own earlier attempt, or another replica's): do not act again.
    AlreadyClaimed(Box<ActionRecord>),
}

/// What a cooldown applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CooldownTarget {
    Service(String),
    Instance(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    #[error("no action {0}")]
    NotFound(String),
}

impl LedgerError {
    pub fn label(&self) -> &'static str {
        match self {
            LedgerError::Unavailable(_) => "unavailable",
            LedgerError::NotFound(_) => "not_found",
        }
    }
}

/// The durable record of moves and cooldowns.
pub trait Ledger {
    /// Records a new action if its id is new (a conditional write).
    fn claim(&self, record: ActionRecord) -> impl Future<Output = Result<Claim, LedgerError>> + Send;
    /// Moves an action to `state`, with what happened.
    fn update(
        &self,
        cluster: &str,
        id: &str,
        state: ActionState,
        outcome: Option<String>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Every action of the cluster still claimed or acting.
    fn in_flight(&self, cluster: &str) -> impl Future<Output = Result<Vec<ActionRecord>, LedgerError>> + Send;
    /// Actions claimed since `since` (for the hourly budget and for `status`).
    fn since(
        &self,
        cluster: &str,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ActionRecord>, LedgerError>> + Send;
    fn set_cooldown(
        &self,
        cluster: &str,
        target: CooldownTarget,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Cooldowns still running at `now`.
    fn cooldowns(
        &self,
        cluster: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(CooldownTarget, DateTime<Utc>)>, LedgerError>> + Send;
}

/// Builds the planner's view of the ledger at `now`.
pub async fn view<L: Ledger>(ledger: &L, cluster: &str, now: DateTime<Utc>) -> Result<LedgerView, LedgerError> {
    use crate::plan::InFlight;
    let mut view = LedgerView::default();
    for r in ledger.in_flight(cluster).await? {
        view.in_flight.push(match r.kind.as_str() {
            "stop-task" => InFlight::StopTask {
                task_arn: r.target.clone(),
                service: r.service.clone().unwrap_or_default(),
            },
            "redeploy-service" => InFlight::Redeploy {
                service: r.target.clone(),
            },
            _ => InFlight::Drain {
                container_instance_arn: r.target.clone(),
            },
        });
    }
    for (target, until) in ledger.cooldowns(cluster, now).await? {
        match target {
            CooldownTarget::Service(s) => view.service_cooldowns.push((s, until)),
            CooldownTarget::Instance(i) => view.instance_cooldowns.push((i, until)),
        }
    }
    let hour_ago = now - chrono::Duration::hours(1);
    view.restarts = ledger
        .since(cluster, hour_ago)
        .await?
        .into_iter()
        .filter(|r| r.state != ActionState::Abandoned)
        .map(|r| (r.claimed_at, r.tasks))
        .collect();
    Ok(view)
}

//! The controller cycle: observe → settle what is in flight → plan → re-observe and re-check each target → claim in
//! the ledger → act → record. One cycle returns when to run again ([`CycleReport::requeue_after`]); failures go
//! through one [`error_policy`].
//!
//! IMPORTANT: the order claim → act → update is what makes a crash safe. A claim without an act is found by the next
//! cycle's settle step, which asks ECS whether the act happened (the task's `stoppedReason` carries the action id, a
//! deployment other than the one the claim recorded exists, the instance is DRAINING) and never repeats it blindly.
//! Settling reads ECS's identifiers and timestamps only, never this controller's clock against ECS's.
//!
//! This file holds the cycle, its errors and its report, and action ids; `act.rs` re-checks, claims and sends one
//! move, `settle.rs` finishes what is in flight, and `verify.rs` checks where settled moves landed against their
//! odds; `crash.rs`, built only with the `crash-points` feature, stops the process dead for the crash-recovery
//! tests. An action item the ledger cannot read holds back what it names, and the plan says so
//! (`ledger::Unreadable`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ecs::{EcsApi, EcsError};
use crate::ledger::lease::LeaseView;
use crate::ledger::{self, ActionState, EpisodeRecord, Fence, Ledger, LedgerError};
use crate::model::Cluster;
use crate::moves::{some_of, MoveKind, LANDING_SHOWN};
use crate::plan::{self, Plan, PlannedAction};
use crate::policy::{Mode, Policy};

mod act;

use act::Acted;
#[cfg(feature = "crash-points")]
mod crash;
mod settle;
mod verify;

#[cfg(feature = "crash-points")]
pub use crash::CrashPoint;
pub use verify::{Odds, BACKOFF, MIN_DRAWS, MISPREDICTIONS_BEFORE_BACKOFF};

/// The target of every line this module logs, whichever of its files logs it (docs/operations.md shows it).
const LOG: &str = module_path!();

/// How soon to look again while moves are in flight.
pub const SETTLE_INTERVAL: Duration = Duration::from_secs(30);
/// A move that has not played out by then is failed (a drain is reverted).
pub const ACTION_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// Everything a cycle can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error("observing the cluster: {0}")]
    Observe(EcsError),
    // Not a `source`: the message already carries it, and a chain printer would print it twice.
    #[error("the observed cluster cannot be indexed: {0}")]
    Index(crate::model::DuplicateKey),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<crate::model::DuplicateKey> for CycleError {
    fn from(e: crate::model::DuplicateKey) -> Self {
        CycleError::Index(e)
    }
}

impl CycleError {
    pub fn label(&self) -> &'static str {
        match self {
            CycleError::Observe(e) => e.label(),
            CycleError::Index(_) => "index",
            CycleError::Ledger(e) => e.label(),
        }
    }

    /// Whether no retry can help until a person changes a setting: the AWS configuration, a ledger table or a
    /// cluster that does not exist.
    pub fn is_configuration(&self) -> bool {
        match self {
            CycleError::Observe(e) => matches!(e, EcsError::Config(_) | EcsError::NotFound(_)),
            CycleError::Index(_) => false,
            CycleError::Ledger(e) => e.is_configuration(),
        }
    }
}

/// The one error policy: no I/O, just when to try again. Throttling and outages back off longer.
pub fn error_policy(error: &CycleError) -> Duration {
    match error {
        CycleError::Observe(EcsError::Throttled(_)) | CycleError::Ledger(LedgerError::Unavailable(_)) => {
            Duration::from_secs(120)
        }
        _ => Duration::from_secs(60),
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleReport {
    pub plan: Plan,
    /// The actions sent to ECS this cycle.
    pub acted: Vec<Sent>,
    /// The actions that finished this cycle, with what happened.
    pub settled: Vec<Settled>,
    /// Planned actions not sent, with why (the target changed, already claimed, ECS refused).
    pub not_sent: Vec<(String, String)>,
    /// Actions sent whose answer was lost (a timeout, a 5xx after the SDK's retries), with the error: in flight, and
    /// settled from what ECS shows next cycle. Not counted in `acted`: ECS did not confirm them.
    pub unanswered: Vec<(String, String)>,
    /// Actions still in flight after this cycle.
    pub in_flight: usize,
    #[serde(skip)]
    pub requeue_after: Duration,
}

/// An action sent to ECS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub id: String,
    pub kind: MoveKind,
}

/// An action that finished, with what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settled {
    pub id: String,
    pub kind: MoveKind,
    pub state: ActionState,
    pub outcome: String,
}

/// Totals over a controller's life.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerStats {
    pub cycles: u32,
    pub actions_by_kind: BTreeMap<String, u32>,
    pub tasks_restarted: u32,
    /// Settled moves whose replacements landed outside every predicted instance.
    pub mispredictions: u32,
    /// Settled stops whose replacement landed on a predicted instance where the move does not pay off.
    pub unlucky: u32,
    pub failed: u32,
    /// Services backed off after repeated mispredictions.
    pub backed_off: Vec<String>,
}

/// A controller for one cluster.
pub struct Controller<'a, E, L> {
    ecs: &'a E,
    ledger: &'a L,
    policy: Policy,
    cluster: String,
    /// Act even when the policy says `dry-run` (`simulate` plays dry-run policies as if enforced).
    force_enforce: bool,
    mispredicted: HashMap<String, u32>,
    /// Per service, how its settled stops paid off against their odds.
    odds: HashMap<String, Odds>,
    /// Under a lease, every claim and ECS mutation first proves the lease fresh (`None`: no lease, as in `simulate`).
    lease: Option<LeaseView>,
    /// For the crash tests: abort the process at this point of the first action (`crash.rs`).
    #[cfg(feature = "crash-points")]
    crash_at: Option<CrashPoint>,
    pub stats: ControllerStats,
}

/// What an action acts on: the task ARN, the service name or the container instance ARN.
pub fn target_of(action: &PlannedAction) -> String {
    action.mv.target().to_owned()
}

impl<'a, E: EcsApi + Sync, L: Ledger + Sync> Controller<'a, E, L> {
    pub fn new(ecs: &'a E, ledger: &'a L, policy: Policy, cluster: &str) -> Self {
        Controller {
            ecs,
            ledger,
            policy,
            cluster: cluster.to_owned(),
            force_enforce: false,
            mispredicted: HashMap::new(),
            odds: HashMap::new(),
            lease: None,
            #[cfg(feature = "crash-points")]
            crash_at: None,
            stats: ControllerStats::default(),
        }
    }

    /// Acts only while `lease` is provably fresh, and claims under its fence.
    pub fn under_lease(mut self, lease: LeaseView) -> Self {
        self.lease = Some(lease);
        self
    }

    /// `Ok(None)` without a lease, `Ok(Some(fence))` while it is fresh, `Err` when it cannot be proven.
    fn fence(&self) -> Result<Option<Fence>, String> {
        match &self.lease {
            None => Ok(None),
            Some(view) => view
                .fence()
                .map(Some)
                .ok_or_else(|| "the lease cannot be proven fresh: not acting".to_owned()),
        }
    }

    /// Act on every plan, whatever the policy's mode (for simulations).
    pub fn enforce_always(mut self) -> Self {
        self.force_enforce = true;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the policy (a reloaded folder); the episode (in the ledger) carries on.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// One cycle at `now`.
    pub async fn cycle(&mut self, now: DateTime<Utc>) -> Result<CycleReport, CycleError> {
        self.stats.cycles += 1;
        let cluster = Cluster::new(self.ecs.observe_shared().await.map_err(CycleError::Observe)?)?;
        let (settled, log) = self.settle(&cluster, now).await?;
        // One read of the action log serves settling and planning; settling wrote what it finished into it.
        let log = match log {
            Some(log) => log,
            None => {
                self.ledger
                    .read_actions(&self.cluster, DateTime::<Utc>::MIN_UTC)
                    .await?
            }
        };
        let mut in_flight = log.records.iter().filter(|r| r.state.in_flight()).count();
        let view = ledger::view_of(self.ledger, &self.cluster, log, now).await?;
        // The episode lives in the ledger, so `once` runs and a new leader carry on the one a previous cycle started.
        let episode = self.ledger.read_episode(&self.cluster).await?.unwrap_or_default();
        let plan = plan::plan(&cluster, &self.policy, &view, now, episode.episode());
        if plan.status != plan::Status::Halted {
            self.store_episode(&episode, episode.after(plan.episode, now)).await?;
        }
        let mut acted = Vec::new();
        let mut not_sent = Vec::new();
        let mut unanswered = Vec::new();
        let enforce = self.force_enforce || self.policy.mode == Mode::Enforce;
        if !enforce {
            // dry-run plans and logs every move and carries none out (docs/policy.md).
            for action in &plan.actions {
                tracing::info!(
                    action = %action.mv.id(&cluster),
                    kind = action.mv.kind().as_str(),
                    resource = %target_of(action),
                    reason = %action.reason,
                    landing = %some_of(&action.predicted_landing, LANDING_SHOWN, str::to_owned),
                    "planned (dry-run: not sent)"
                );
            }
        }
        if enforce && !plan.actions.is_empty() {
            // Re-check every target against a fresh observation right before acting.
            let fresh = Cluster::new(self.ecs.observe_shared().await.map_err(CycleError::Observe)?)?;
            let mut score = plan.before.score;
            for action in &plan.actions {
                let gain = score - action.score_after;
                score = action.score_after;
                match self.act(action, gain, &cluster, &fresh, now).await? {
                    Acted::Sent(id) => {
                        in_flight += 1;
                        acted.push(Sent {
                            id,
                            kind: action.mv.kind(),
                        });
                    }
                    Acted::LeftClaimed(why) => {
                        in_flight += 1;
                        not_sent.push((target_of(action), why));
                    }
                    Acted::Unanswered(why) => {
                        in_flight += 1;
                        unanswered.push((target_of(action), why));
                    }
                    Acted::NotSent(why) => not_sent.push((target_of(action), why)),
                }
            }
        }
        let requeue_after = if in_flight > 0 {
            SETTLE_INTERVAL.min(self.policy.interval)
        } else {
            self.policy.interval
        };
        Ok(CycleReport {
            plan,
            acted,
            settled,
            not_sent,
            unanswered,
            in_flight,
            requeue_after,
        })
    }

    /// Writes the episode when it changed, under the lease's fence (a deposed leader's write is refused). A replica
    /// that cannot prove its lease writes nothing: it acts on nothing either, and the leader keeps the episode.
    async fn store_episode(&self, stored: &EpisodeRecord, next: EpisodeRecord) -> Result<(), CycleError> {
        if next == *stored {
            return Ok(());
        }
        let fence = match self.fence() {
            Ok(f) => f,
            Err(why) => {
                tracing::warn!("{why}; the episode is left as the ledger has it");
                return Ok(());
            }
        };
        self.ledger.write_episode(&self.cluster, &next, fence.as_ref()).await?;
        tracing::info!(
            active = next.active,
            "rebalancing episode {}",
            if next.active { "started" } else { "ended" }
        );
        Ok(())
    }
}

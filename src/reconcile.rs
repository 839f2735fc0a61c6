//! The controller cycle: observe → settle what is in flight → plan → re-observe and re-check each target → claim in
//! the ledger → act → record. One cycle returns when to run again ([`CycleReport::requeue_after`]); failures go
//! through one [`error_policy`].
//!
//! IMPORTANT: the order claim → act → update is what makes a crash safe. A claim without an act is found by the next
//! cycle's settle step, which asks ECS whether the act happened (the task's `stoppedReason` carries the action id, a
//! deployment other than the one the claim recorded exists, the instance is DRAINING) and never repeats it blindly.
//! Settling reads ECS's identifiers and timestamps only, never this controller's clock against ECS's.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ecs::{EcsApi, EcsError, InstanceState};
use crate::ledger::lease::LeaseView;
use crate::ledger::{
    self, ActionRecord, ActionState, Claim, CooldownTarget, EpisodeRecord, Fence, Ledger, LedgerError,
};
use crate::model::{Cluster, DeploymentStatus, InstanceStatus, RolloutState, SchedulingStrategy, Task, TaskStatus};
use crate::plan::{self, Plan, PlannedAction};
use crate::policy::{Mode, Policy};

/// How soon to look again while moves are in flight.
pub const SETTLE_INTERVAL: Duration = Duration::from_secs(30);
/// A move that has not played out by then is failed (a drain is reverted).
pub const ACTION_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// Moves of one service that land outside their prediction before the service is backed off.
pub const MISPREDICTIONS_BEFORE_BACKOFF: u32 = 3;
/// How long a backed-off service is left alone.
pub const BACKOFF: Duration = Duration::from_secs(60 * 60);
/// Stops of one service settled before their hit rate is compared with their odds.
pub const MIN_DRAWS: u32 = 4;

/// How often a service's stops paid off against how often their odds said they would.
#[derive(Debug, Clone, Copy, Default)]
pub struct Odds {
    draws: u32,
    hits: u32,
    /// The sum of the odds: the expected number of hits.
    expected: f64,
    /// The sum of `p · (1 − p)`: the variance of the number of hits.
    variance: f64,
}

impl Odds {
    pub fn record(&mut self, p: f64, hit: bool) {
        self.draws += 1;
        self.hits += u32::from(hit);
        self.expected += p;
        self.variance += p * (1.0 - p);
    }

    /// Whether the hits fall more than two standard deviations short of the odds, over enough draws.
    pub fn below_expectation(&self) -> bool {
        self.draws >= MIN_DRAWS && f64::from(self.hits) + 2.0 * self.variance.sqrt() < self.expected
    }
}

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
    /// Ids of the actions sent to ECS this cycle.
    pub acted: Vec<String>,
    /// Ids of the actions that finished this cycle, with what happened.
    pub settled: Vec<(String, ActionState, String)>,
    /// Planned actions not sent, with why (the target changed, already claimed, ECS refused).
    pub not_sent: Vec<(String, String)>,
    /// Actions still in flight after this cycle.
    pub in_flight: usize,
    #[serde(skip)]
    pub requeue_after: Duration,
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
    /// For the crash tests: abort the process at this point of the first action.
    crash_at: Option<CrashPoint>,
    pub stats: ControllerStats,
}

/// Where the crash tests stop a controller dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The action is claimed in the ledger, nothing sent to ECS.
    AfterClaim,
    /// ECS has the action, the ledger still says claimed.
    AfterAct,
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

fn crash(point: &str) -> ! {
    tracing::error!("crash-at {point}: aborting as asked");
    std::process::abort()
}

/// The deterministic id of a planned action: the same move observed twice claims the same record.
pub fn action_id(action: &PlannedAction, cluster: &Cluster) -> String {
    let last = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
    match action.kind {
        "stop-task" => format!("stop-task:{}", last(action.task_arn.as_deref().unwrap_or(""))),
        "redeploy-service" => {
            let service = action.service_name.clone().unwrap_or_default();
            let deployment = cluster
                .service(&service)
                .and_then(|s| s.deployments.iter().find(|d| d.status == DeploymentStatus::Primary))
                .map_or_else(String::new, |d| last(&d.id));
            format!("redeploy-service:{service}:{deployment}")
        }
        _ => {
            let arn = action.container_instance_arn.clone().unwrap_or_default();
            let version = cluster.instance(&arn).and_then(|i| i.version).unwrap_or(0);
            format!("drain-instance:{}:{version}", last(&arn))
        }
    }
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
            crash_at: None,
            stats: ControllerStats::default(),
        }
    }

    /// Acts only while `lease` is provably fresh, and claims under its fence.
    pub fn under_lease(mut self, lease: LeaseView) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Aborts the process at `point` (hidden `--crash-at`, for the crash-recovery tests).
    pub fn crash_at(mut self, point: Option<CrashPoint>) -> Self {
        self.crash_at = point;
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
        let cluster = Cluster::new(self.ecs.observe().await.map_err(CycleError::Observe)?)?;
        let settled = self.settle(&cluster, now).await?;
        let view = ledger::view(self.ledger, &self.cluster, now).await?;
        // The episode lives in the ledger, so `once` runs and a new leader carry on the one a previous cycle started.
        let episode = self.ledger.read_episode(&self.cluster).await?.unwrap_or_default();
        let plan = plan::plan(&cluster, &self.policy, &view, now, episode.episode());
        if plan.status != plan::Status::Halted {
            self.store_episode(&episode, episode.after(plan.episode, now)).await?;
        }
        let mut acted = Vec::new();
        let mut not_sent = Vec::new();
        let enforce = self.force_enforce || self.policy.mode == Mode::Enforce;
        if !enforce {
            // dry-run plans and logs every move and carries none out (docs/policy.md).
            for action in &plan.actions {
                tracing::info!(
                    action = %action_id(action, &cluster),
                    kind = action.kind,
                    resource = %target_of(action),
                    reason = %action.reason,
                    landing = ?action.predicted_landing,
                    "planned (dry-run: not sent)"
                );
            }
        }
        if enforce && !plan.actions.is_empty() {
            // Re-check every target against a fresh observation right before acting.
            let fresh = Cluster::new(self.ecs.observe().await.map_err(CycleError::Observe)?)?;
            let mut score = plan.before.score;
            for action in &plan.actions {
                let gain = score - action.score_after;
                score = action.score_after;
                match self.act(action, gain, &cluster, &fresh, now).await? {
                    Ok(id) => acted.push(id),
                    Err(why) => not_sent.push((target_of(action), why)),
                }
            }
        }
        let in_flight = self.ledger.in_flight(&self.cluster).await?.len();
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

    /// Claims and carries out one planned action, if its target is still as planned. Returns its id when sent, or
    /// why it was not.
    async fn act(
        &mut self,
        action: &PlannedAction,
        gain: f64,
        planned_on: &Cluster,
        fresh: &Cluster,
        now: DateTime<Utc>,
    ) -> Result<Result<String, String>, CycleError> {
        if let Err(why) = still_valid(action, planned_on, fresh, now) {
            return Ok(Err(why));
        }
        let id = action_id(action, planned_on);
        let record = ActionRecord {
            id: id.clone(),
            cluster: self.cluster.clone(),
            kind: action.kind.to_owned(),
            target: target_of(action),
            service: action.service_name.clone(),
            instance: action.container_instance_arn.clone(),
            deployment_before: action.service_name.as_deref().and_then(|s| {
                planned_on
                    .service(s)
                    .and_then(|s| s.deployments.iter().find(|d| d.status == DeploymentStatus::Primary))
                    .map(|d| d.id.clone())
            }),
            state: ActionState::Claimed,
            claimed_at: now,
            updated_at: now,
            reason: action.reason.clone(),
            predicted_landing: action.predicted_landing.clone(),
            improving_landing: action.improving_landing.clone(),
            moved_tasks: action.moved_tasks.clone(),
            seen_until: Some(seen_until(fresh)),
            predicted_gain: gain,
            tasks: action.tasks_restarted,
            outcome: None,
            holder: String::new(),
            epoch: 0,
            token: format!("{:016x}", fastrand::u64(..)),
        };
        let fence = match self.fence() {
            Ok(f) => f,
            Err(why) => return Ok(Err(why)),
        };
        let record = ActionRecord {
            holder: fence.as_ref().map(|f| f.holder.clone()).unwrap_or_default(),
            epoch: fence.as_ref().map_or(0, |f| f.epoch),
            ..record
        };
        let target = record.target.clone();
        if let Claim::AlreadyClaimed(existing) = self.ledger.claim(record, fence.as_ref()).await? {
            tracing::info!(action = %id, state = existing.state.as_str(), "already claimed; not acting again");
            return Ok(Err(format!("already claimed ({:?})", existing.state)));
        }
        tracing::info!(
            action = %id,
            kind = action.kind,
            resource = %target,
            reason = %action.reason,
            landing = ?action.predicted_landing,
            "claimed"
        );
        if self.crash_at == Some(CrashPoint::AfterClaim) {
            crash("after-claim");
        }
        // The claim is recorded; if the lease went stale meanwhile, leave it claimed for whoever leads to settle.
        if let Err(why) = self.fence() {
            tracing::warn!(action = %id, "{why}; left claimed for the leader to settle");
            return Ok(Err(format!("claimed, then {why}")));
        }
        let result = match action.kind {
            "stop-task" => {
                self.ecs
                    .stop_task(
                        action.task_arn.as_deref().unwrap_or(""),
                        &format!("ecs-rebalancer {id}"),
                    )
                    .await
            }
            "redeploy-service" => {
                self.ecs
                    .force_new_deployment(action.service_name.as_deref().unwrap_or(""))
                    .await
            }
            _ => {
                self.ecs
                    .set_instance_state(
                        action.container_instance_arn.as_deref().unwrap_or(""),
                        InstanceState::Draining,
                    )
                    .await
            }
        };
        if self.crash_at == Some(CrashPoint::AfterAct) {
            crash("after-act");
        }
        match &result {
            Ok(()) => tracing::info!(action = %id, "sent to ECS"),
            Err(e) => tracing::warn!(action = %id, error = %e, "ECS call failed"),
        }
        match result {
            Ok(()) => {
                self.ledger
                    .update(&self.cluster, &id, ActionState::Acting, None, now)
                    .await?;
                *self.stats.actions_by_kind.entry(action.kind.to_owned()).or_default() += 1;
                self.stats.tasks_restarted += action.tasks_restarted;
                Ok(Ok(id))
            }
            // Not retried blindly: the record stays claimed, and the next cycle's settle step asks ECS what happened.
            Err(EcsError::Unknown(why)) => Ok(Err(format!("outcome unknown, to be settled: {why}"))),
            Err(e) => {
                self.ledger
                    .update(&self.cluster, &id, ActionState::Failed, Some(e.to_string()), now)
                    .await?;
                self.stats.failed += 1;
                Ok(Err(format!("ECS refused: {e}")))
            }
        }
    }

    /// Finishes what is in flight, from what ECS shows now.
    async fn settle(
        &mut self,
        cluster: &Cluster,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, ActionState, String)>, CycleError> {
        let mut finished = Vec::new();
        for r in self.ledger.in_flight(&self.cluster).await? {
            // Settling may set a drained instance ACTIVE again; a replica that cannot prove its lease leaves every
            // record as it is for the leader (an overdue drain recorded failed without its revert would strand it).
            if self.fence().is_err() {
                tracing::warn!("the lease cannot be proven fresh: leaving in-flight actions to the leader");
                break;
            }
            let overdue = now - r.claimed_at > chrono::Duration::from_std(ACTION_DEADLINE).unwrap_or_default();
            let verdict = match r.kind.as_str() {
                "stop-task" => settle_stop(&r, cluster),
                "redeploy-service" => settle_redeploy(&r, cluster),
                _ => self.settle_drain(&r, cluster, overdue).await,
            };
            let (state, outcome, landed) = match verdict {
                Verdict::Waiting if overdue => (ActionState::Failed, "did not play out in time".to_owned(), None),
                Verdict::Waiting | Verdict::Deferred => continue,
                Verdict::NeverSent => (
                    ActionState::Abandoned,
                    "never reached ECS (claimed, not sent)".into(),
                    None,
                ),
                Verdict::Done { outcome, landed } => (ActionState::Done, outcome, landed),
                Verdict::Failed(why) => (ActionState::Failed, why, None),
            };
            if state == ActionState::Failed {
                self.stats.failed += 1;
            }
            let mut outcome = outcome;
            if let Some(landed) = landed.filter(|l| !l.is_empty()) {
                if let Some(note) = self.verify(&r, &landed, now).await? {
                    outcome.push_str(&note);
                }
            }
            if !self
                .ledger
                .update(&self.cluster, &r.id, state, Some(outcome.clone()), now)
                .await?
            {
                tracing::info!(action = %r.id, "already settled by another replica");
                continue;
            }
            tracing::info!(action = %r.id, state = state.as_str(), outcome = %outcome, "settled");
            if state == ActionState::Done {
                self.start_cooldowns(&r, now).await?;
            }
            finished.push((r.id.clone(), state, outcome));
        }
        Ok(finished)
    }

    /// Verify-after-act: where a settled move's replacements landed, against the distribution the planner
    /// predicted. Outside every predicted instance is a misprediction (the model was wrong); inside but not on an
    /// instance where the move pays off is an unlucky draw, which the odds allow for. A service is backed off after
    /// [`MISPREDICTIONS_BEFORE_BACKOFF`] mispredictions, or when its stops pay off much less often than their odds
    /// said (two standard deviations below the expected count, over at least [`MIN_DRAWS`] stops): the model of its
    /// placement is wrong, and re-rolling it only restarts tasks. Returns a note for the outcome.
    async fn verify(
        &mut self,
        r: &ActionRecord,
        landed: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<String>, CycleError> {
        let Some(service) = r.service.clone() else {
            return Ok(None);
        };
        let outside = !landed.iter().any(|l| r.predicted_landing.contains(l));
        let mut note = None;
        let mut back_off = false;
        if outside {
            note = Some(" (outside the predicted instances)".to_owned());
            self.stats.mispredictions += 1;
            let n = self.mispredicted.entry(service.clone()).or_default();
            *n += 1;
            back_off = *n >= MISPREDICTIONS_BEFORE_BACKOFF;
        }
        if r.kind == "stop-task" && !r.improving_landing.is_empty() && !r.predicted_landing.is_empty() {
            #[allow(clippy::cast_precision_loss)] // tie sets are small
            let p = r.improving_landing.len() as f64 / r.predicted_landing.len() as f64;
            let hit = landed.iter().any(|l| r.improving_landing.contains(l));
            if !hit && !outside {
                note = Some(" (an unlucky draw: not where the move pays off)".to_owned());
                self.stats.unlucky += 1;
            }
            let odds = self.odds.entry(service.clone()).or_default();
            odds.record(p, hit);
            back_off |= odds.below_expectation();
        }
        if back_off && !self.stats.backed_off.contains(&service) {
            let until = now + chrono::Duration::from_std(BACKOFF).unwrap_or_default();
            self.ledger
                .set_cooldown(&self.cluster, CooldownTarget::Service(service.clone()), until)
                .await?;
            tracing::warn!(service = %service, "moves of this service keep missing their prediction; leaving it alone for an hour");
            self.stats.backed_off.push(service);
        }
        Ok(note)
    }

    async fn start_cooldowns(&self, r: &ActionRecord, now: DateTime<Utc>) -> Result<(), CycleError> {
        let after = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
        if let Some(service) = &r.service {
            self.ledger
                .set_cooldown(
                    &self.cluster,
                    CooldownTarget::Service(service.clone()),
                    after(self.policy.cooldown.service),
                )
                .await?;
        }
        if let Some(instance) = &r.instance {
            self.ledger
                .set_cooldown(
                    &self.cluster,
                    CooldownTarget::Instance(instance.clone()),
                    after(self.policy.cooldown.instance),
                )
                .await?;
        }
        Ok(())
    }

    /// A drain is finished by setting the instance ACTIVE again once its service tasks are gone, or reverted at the
    /// deadline. Only the instance this record drained is ever set ACTIVE (ECS-SEMANTICS §3: others drain too).
    async fn settle_drain(&self, r: &ActionRecord, cluster: &Cluster, overdue: bool) -> Verdict {
        let Some(instance) = cluster.instance(&r.target) else {
            return Verdict::Done {
                outcome: "the instance is gone".into(),
                landed: None,
            };
        };
        match instance.status {
            InstanceStatus::Draining => {}
            InstanceStatus::Active if r.state == ActionState::Claimed => return Verdict::NeverSent,
            _ => {
                return Verdict::Done {
                    outcome: format!("the instance is {} (changed by someone else)", instance.status),
                    landed: None,
                }
            }
        }
        // A partial drain waits for the tasks it expected ECS to move; what ECS cannot move (standalone tasks, a
        // service at 100 %/100 %) stays where it is and never keeps the instance DRAINING. Records written before
        // drains named their tasks wait for every service task but daemons.
        let remaining = cluster
            .tasks_on(&r.target)
            .filter(|t| t.desired_status != TaskStatus::Stopped)
            .filter(|t| {
                if r.moved_tasks.is_empty() {
                    t.service_name()
                        .and_then(|s| cluster.service(s))
                        .is_some_and(|s| s.scheduling_strategy != SchedulingStrategy::Daemon)
                } else {
                    r.moved_tasks.contains(&t.task_arn)
                }
            })
            .count();
        if remaining > 0 && !overdue {
            return Verdict::Waiting;
        }
        if self.fence().is_err() {
            return Verdict::Deferred;
        }
        match self.ecs.set_instance_state(&r.target, InstanceState::Active).await {
            Ok(()) if remaining == 0 => Verdict::Done {
                outcome: if r.moved_tasks.is_empty() {
                    "emptied of service tasks and set ACTIVE again".into()
                } else {
                    format!("its {} moved task(s) are gone; set ACTIVE again", r.moved_tasks.len())
                },
                landed: None,
            },
            Ok(()) => Verdict::Failed(format!(
                "{remaining} service task(s) still on it at the deadline; set ACTIVE again"
            )),
            // Never recorded finished before the revert succeeds: a final record would strand the instance DRAINING.
            Err(e) => {
                tracing::warn!(action = %r.id, error = %e, "setting the instance ACTIVE again failed; retrying next cycle");
                Verdict::Deferred
            }
        }
    }
}

enum Verdict {
    Waiting,
    /// Not this replica's to decide now (its lease cannot be proven): no update at all, overdue or not.
    Deferred,
    NeverSent,
    Done {
        outcome: String,
        landed: Option<Vec<String>>,
    },
    Failed(String),
}

/// What an action acts on: the task ARN, the service name or the container instance ARN.
pub fn target_of(action: &PlannedAction) -> String {
    match action.kind {
        "stop-task" => action.task_arn.clone(),
        "redeploy-service" => action.service_name.clone(),
        _ => action.container_instance_arn.clone(),
    }
    .unwrap_or_default()
}

/// A stop is done when the task has stopped (with our id in `stoppedReason`) and the service is whole again.
fn settle_stop(r: &ActionRecord, cluster: &Cluster) -> Verdict {
    let task = cluster.task(&r.target);
    let stopped_by_us = task.is_none_or(|t| t.stopped_reason.as_deref().is_some_and(|s| s.contains(&r.id)));
    match task {
        Some(t) if t.desired_status != TaskStatus::Stopped => {
            return if r.state == ActionState::Claimed {
                Verdict::NeverSent
            } else {
                Verdict::Waiting
            };
        }
        Some(t) if t.last_status != TaskStatus::Stopped => return Verdict::Waiting,
        _ => {}
    }
    if !stopped_by_us {
        return Verdict::Done {
            outcome: "the task was stopped by someone else".into(),
            landed: None,
        };
    }
    let Some(service) = r.service.as_deref().and_then(|s| cluster.service(s)) else {
        return Verdict::Done {
            outcome: "the service is gone".into(),
            landed: None,
        };
    };
    if service.running_count < service.desired_count || service.pending_count > 0 {
        return Verdict::Waiting;
    }
    let Some(since) = r.seen_until else {
        return Verdict::Done {
            outcome: "replacement running (where is not known: the claim predates seenUntil)".into(),
            landed: None,
        };
    };
    // ECS does not link a replacement to the task it replaced: every task of the service created since the claim is
    // a candidate (several when other stops of the service were under way).
    let new = created_after(cluster, &service.service_name, since);
    let started = new.len();
    let landed = instances_of(new);
    let names: Vec<String> = landed.iter().map(|a| short(cluster, a)).collect();
    let outcome = match started {
        0 => "the service is whole again, with no task of it newer than the claim".to_owned(),
        1 => format!("replacement running on {}", names.join(", ")),
        n => format!(
            "replacement running on one of {} ({n} tasks of the service started since the claim)",
            names.join(", ")
        ),
    };
    Verdict::Done {
        outcome,
        landed: Some(landed),
    }
}

/// A redeploy is done when a newer deployment is the only one and completed.
fn settle_redeploy(r: &ActionRecord, cluster: &Cluster) -> Verdict {
    let Some(service) = cluster.service(&r.target) else {
        return Verdict::Done {
            outcome: "the service is gone".into(),
            landed: None,
        };
    };
    // ECS's own identifiers, not clocks: the deployment the claim replaced is recorded, so any other is newer.
    let Some(before) = r.deployment_before.as_deref() else {
        return Verdict::Failed("no deployment was recorded at the claim, so the redeploy cannot be verified".into());
    };
    let newer = service.deployments.iter().any(|d| d.id != before);
    if !newer {
        return if r.state == ActionState::Claimed {
            Verdict::NeverSent
        } else {
            Verdict::Waiting
        };
    }
    let finished = service.deployments.len() == 1
        && service.deployments[0]
            .rollout_state
            .as_ref()
            .is_none_or(|s| *s == RolloutState::Completed);
    if !finished {
        return if service
            .deployments
            .iter()
            .any(|d| d.rollout_state == Some(RolloutState::Failed))
        {
            Verdict::Failed("the new deployment failed (circuit breaker)".into())
        } else {
            Verdict::Waiting
        };
    }
    // ECS starts a deployment's tasks with the deployment's id in `startedBy`.
    let deployment = &service.deployments[0].id;
    let replaced: Vec<&Task> = cluster
        .tasks_of(&service.service_name)
        .filter(|t| {
            t.is_live()
                && t.desired_status != TaskStatus::Stopped
                && t.started_by.as_deref() == Some(deployment.as_str())
        })
        .collect();
    let count = replaced.len();
    let landed = instances_of(replaced);
    let names: Vec<String> = landed.iter().map(|a| short(cluster, a)).collect();
    Verdict::Done {
        outcome: format!("{count} task(s) replaced, on {}", names.join(", ")),
        landed: Some(landed),
    }
}

/// ECS's clock at a claim: the newest `createdAt` among the observed tasks, or the Unix epoch when none has one
/// (then every task with a `createdAt` is newer). See [`ActionRecord::seen_until`].
fn seen_until(observed: &Cluster) -> DateTime<Utc> {
    observed
        .tasks()
        .iter()
        .filter_map(|t| t.created_at)
        .max()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Live tasks of a service that ECS created after `since` (ECS's clock).
fn created_after<'c>(cluster: &'c Cluster, service: &str, since: DateTime<Utc>) -> Vec<&'c Task> {
    cluster
        .tasks_of(service)
        .filter(|t| t.is_live() && t.desired_status != TaskStatus::Stopped && t.created_at.is_some_and(|c| c > since))
        .collect()
}

/// The instances `tasks` run on, sorted, each once.
fn instances_of(tasks: Vec<&Task>) -> Vec<String> {
    let mut v: Vec<String> = tasks.iter().filter_map(|t| t.container_instance_arn.clone()).collect();
    v.sort();
    v.dedup();
    v
}

fn short(cluster: &Cluster, arn: &str) -> String {
    cluster
        .instance(arn)
        .and_then(|i| i.ec2_instance_id.clone())
        .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or(arn).to_owned())
}

/// Whether a planned action's target is still as it was planned (karpenter's validation step), and no task it would
/// stop has gained scale-in protection since the plan: a protected task is never disrupted
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>).
fn still_valid(
    action: &PlannedAction,
    planned_on: &Cluster,
    fresh: &Cluster,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let protected = |task_arn: &str| {
        fresh
            .snapshot()
            .protected_tasks
            .iter()
            .any(|p| p.task_arn == task_arn && p.active_at(now))
    };
    match action.kind {
        "stop-task" => {
            let arn = action.task_arn.as_deref().unwrap_or("");
            let t = fresh.task(arn).ok_or("the task is gone")?;
            if t.desired_status == TaskStatus::Stopped {
                return Err("the task is already stopping".into());
            }
            if t.container_instance_arn != action.container_instance_arn {
                return Err("the task is on another instance".into());
            }
            if protected(arn) {
                return Err("the task has scale-in protection now".into());
            }
        }
        "redeploy-service" => {
            let name = action.service_name.as_deref().unwrap_or("");
            let (before, current) = (
                planned_on.service(name),
                fresh.service(name).ok_or("the service is gone")?,
            );
            let ids = |s: &crate::model::Service| s.deployments.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
            if before.map(ids) != Some(ids(current)) {
                return Err("the service's deployments changed".into());
            }
            if let Some(t) = fresh.tasks_of(name).find(|t| t.is_live() && protected(&t.task_arn)) {
                return Err(format!(
                    "task {} of the service has scale-in protection now",
                    t.task_arn
                ));
            }
        }
        _ => {
            let arn = action.container_instance_arn.as_deref().unwrap_or("");
            let i = fresh.instance(arn).ok_or("the instance is gone")?;
            if i.status != InstanceStatus::Active {
                return Err(format!("the instance is {}", i.status));
            }
            // Draining stops protected tasks like any other (ECS makes no exception for them).
            if let Some(t) = fresh.tasks_on(arn).find(|t| t.is_live() && protected(&t.task_arn)) {
                return Err(format!(
                    "task {} on the instance has scale-in protection now",
                    t.task_arn
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlucky_draws_within_the_odds_keep_a_service_in_play() {
        let mut odds = Odds::default();
        for hit in [false, false, true, false, false, true] {
            odds.record(1.0 / 3.0, hit);
        }
        assert!(
            !odds.below_expectation(),
            "2 hits in 6 draws at 1/3 is what the odds said"
        );
    }

    #[test]
    fn stops_that_keep_missing_sure_bets_back_the_service_off() {
        let mut odds = Odds::default();
        for _ in 0..3 {
            odds.record(0.9, false);
        }
        assert!(!odds.below_expectation(), "too few draws to judge");
        odds.record(0.9, false);
        assert!(
            odds.below_expectation(),
            "4 misses of 90 % bets: the model of this service is wrong"
        );
    }
}

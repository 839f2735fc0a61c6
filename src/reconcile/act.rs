//! Acting on one planned move: re-check its target against a fresh observation, claim it in the ledger under the
//! lease's fence, send it to ECS, and record that it was sent (or that ECS refused it).

use chrono::{DateTime, Utc};

use super::{action_id, crash, target_of, Controller, CrashPoint, CycleError, LOG};
use crate::ecs::{EcsApi, EcsError, InstanceState};
use crate::ledger::{ActionRecord, ActionState, Claim, Ledger};
use crate::model::{Cluster, DeploymentStatus, InstanceStatus, TaskStatus};
use crate::plan::PlannedAction;

impl<E: EcsApi + Sync, L: Ledger + Sync> Controller<'_, E, L> {
    /// Claims and carries out one planned action, if its target is still as planned. Returns its id when sent, or
    /// why it was not.
    pub(super) async fn act(
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
            tracing::info!(target: LOG, action = %id, state = existing.state.as_str(), "already claimed; not acting again");
            return Ok(Err(format!("already claimed ({:?})", existing.state)));
        }
        tracing::info!(target: LOG,
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
            tracing::warn!(target: LOG, action = %id, "{why}; left claimed for the leader to settle");
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
            Ok(()) => tracing::info!(target: LOG, action = %id, "sent to ECS"),
            Err(e) => tracing::warn!(target: LOG, action = %id, error = %e, "ECS call failed"),
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

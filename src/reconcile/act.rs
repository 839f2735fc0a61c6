//! Acting on one planned move: re-check its target against a fresh observation, claim it in the ledger under the
//! lease's fence, send it to ECS, and record that it was sent (or that ECS refused it).

use chrono::{DateTime, Utc};

#[cfg(feature = "crash-points")]
use super::CrashPoint;
use super::{target_of, Controller, CycleError, LOG};
use crate::ecs::{EcsApi, EcsError, InstanceState};
use crate::ledger::{ActionRecord, ActionState, Claim, Ledger, LedgerError};
use crate::model::{Cluster, DeploymentStatus, InstanceStatus, TaskStatus};
use crate::moves::{some_of, InstanceSet, Move, LANDING_SHOWN};
use crate::plan::PlannedAction;

/// What became of one planned action.
#[derive(Debug)]
pub(super) enum Acted {
    /// Claimed and sent to ECS (its id).
    Sent(String),
    /// Claimed, and left for the leader to settle (why): the lease went stale before sending.
    LeftClaimed(String),
    /// Claimed and sent, but ECS's answer was lost (why): the next settle finds out from ECS what happened.
    Unanswered(String),
    /// Not claimed, or refused by ECS (why).
    NotSent(String),
}

impl<E: EcsApi + Sync, L: Ledger + Sync> Controller<'_, E, L> {
    /// Claims and carries out one planned action, if its target is still as planned.
    pub(super) async fn act(
        &mut self,
        action: &PlannedAction,
        gain: f64,
        planned_on: &Cluster,
        fresh: &Cluster,
        now: DateTime<Utc>,
    ) -> Result<Acted, CycleError> {
        if let Err(why) = still_valid(action, planned_on, fresh, now) {
            return Ok(Acted::NotSent(why));
        }
        let record = self.record(action, gain, planned_on, fresh, now);
        let fence = match self.fence() {
            Ok(f) => f,
            Err(why) => return Ok(Acted::NotSent(why)),
        };
        let record = ActionRecord {
            holder: fence.as_ref().map(|f| f.holder.clone()).unwrap_or_default(),
            epoch: fence.as_ref().map_or(0, |f| f.epoch),
            ..record
        };
        let id = record.id.clone();
        match self.ledger.claim(record, fence.as_ref()).await {
            Ok(Claim::Claimed) => {}
            Ok(Claim::AlreadyClaimed(existing)) => {
                tracing::info!(target: LOG, action = %id, state = existing.state.as_str(), "already claimed; not acting again");
                return Ok(Acted::NotSent(format!("already claimed ({:?})", existing.state)));
            }
            // Its id is taken by an item that cannot be read: whatever it was, it is not repeated.
            Err(LedgerError::Unreadable(u)) => {
                tracing::warn!(target: LOG, action = %id, error = %u.describe(), "already claimed by an unreadable item; not acting");
                return Ok(Acted::NotSent(format!(
                    "already claimed by an item that cannot be read ({})",
                    u.key
                )));
            }
            // The table cannot hold its record, so it cannot be made safely; the other moves still can.
            Err(e @ LedgerError::TooLarge { .. }) => {
                tracing::warn!(target: LOG, action = %id, error = %e, "not acting");
                return Ok(Acted::NotSent(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: LOG,
            action = %id,
            kind = action.mv.kind().as_str(),
            resource = %target_of(action),
            reason = %action.reason,
            landing = %some_of(&action.predicted_landing, LANDING_SHOWN, str::to_owned),
            "claimed"
        );
        #[cfg(feature = "crash-points")]
        self.crash_if_at(CrashPoint::AfterClaim);
        // The claim is recorded; if the lease went stale meanwhile, leave it claimed for whoever leads to settle.
        if let Err(why) = self.fence() {
            tracing::warn!(target: LOG, action = %id, "{why}; left claimed for the leader to settle");
            return Ok(Acted::LeftClaimed(format!("claimed, then {why}")));
        }
        let result = self.send(&action.mv, &id).await;
        #[cfg(feature = "crash-points")]
        self.crash_if_at(CrashPoint::AfterAct);
        match &result {
            Ok(()) => tracing::info!(target: LOG, action = %id, "sent to ECS"),
            Err(e) => tracing::warn!(target: LOG, action = %id, error = %e, "ECS call failed"),
        }
        match result {
            Ok(()) => {
                self.ledger
                    .update(&self.cluster, &id, ActionState::Acting, None, now)
                    .await?;
                let kind = action.mv.kind().as_str().to_owned();
                *self.stats.actions_by_kind.entry(kind).or_default() += 1;
                self.stats.tasks_restarted += action.tasks_restarted;
                Ok(Acted::Sent(id))
            }
            // Not retried blindly: the record stays claimed, and the next cycle's settle step asks ECS what happened.
            Err(EcsError::Unknown(why)) => Ok(Acted::Unanswered(why.to_string())),
            Err(e) => {
                self.ledger
                    .update(&self.cluster, &id, ActionState::Failed, Some(e.to_string()), now)
                    .await?;
                self.stats.failed += 1;
                Ok(Acted::NotSent(format!("ECS refused: {e}")))
            }
        }
    }

    /// The claim of a planned action (no holder yet).
    fn record(
        &self,
        action: &PlannedAction,
        gain: f64,
        planned_on: &Cluster,
        fresh: &Cluster,
        now: DateTime<Utc>,
    ) -> ActionRecord {
        ActionRecord {
            id: action.mv.id(planned_on),
            cluster: self.cluster.clone(),
            mv: action.mv.clone(),
            deployment_before: action.mv.service_name().and_then(|s| {
                planned_on
                    .service(s)
                    .and_then(|s| s.deployments.iter().find(|d| d.status == DeploymentStatus::Primary))
                    .map(|d| d.id.clone())
            }),
            state: ActionState::Claimed,
            claimed_at: now,
            updated_at: now,
            reason: action.reason.clone(),
            predicted_landing: InstanceSet::new(
                &action.predicted_landing,
                planned_on.instances().iter().map(|i| i.container_instance_arn.as_str()),
            ),
            improving_landing: InstanceSet::new(
                &action.improving_landing,
                action.predicted_landing.iter().map(String::as_str),
            ),
            seen_until: Some(seen_until(fresh)),
            predicted_gain: gain,
            tasks: action.tasks_restarted,
            outcome: None,
            holder: String::new(),
            epoch: 0,
            token: format!("{:016x}", fastrand::u64(..)),
            policy_revision: self.policy.revision.clone(),
            policy_name: self.policy.name.clone(),
        }
    }

    /// The one ECS call a move is (the task's `stoppedReason` carries the action id).
    async fn send(&self, mv: &Move, id: &str) -> Result<(), EcsError> {
        match mv {
            Move::StopTask { task_arn, .. } => self.ecs.stop_task(task_arn, &format!("ecs-rebalancer {id}")).await,
            Move::RedeployService { service_name } => self.ecs.force_new_deployment(service_name).await,
            Move::DrainInstance {
                container_instance_arn, ..
            } => {
                self.ecs
                    .set_instance_state(container_instance_arn, InstanceState::Draining)
                    .await
            }
        }
    }
}

/// A stop is the one move ECS does not hold to the service's healthy floor: its plan counted the floor on the service
/// as it was planned. If a rollout started, a task failed or the desired count changed since, that count no longer
/// holds, and the stop is not sent (the next cycle plans on what is there).
fn service_as_planned(name: &str, planned_on: &Cluster, fresh: &Cluster) -> Result<(), String> {
    let before = planned_on
        .service(name)
        .ok_or("the service was not in the plan's observation")?;
    let now = fresh.service(name).ok_or("the service is gone")?;
    let ids = |s: &crate::model::Service| {
        s.deployments
            .iter()
            .map(|d| (d.id.clone(), d.rollout_state.clone()))
            .collect::<Vec<_>>()
    };
    if ids(before) != ids(now) {
        return Err("the service's deployments changed since the plan".into());
    }
    if now.desired_count != before.desired_count {
        return Err(format!(
            "the service's desired count changed since the plan ({} → {})",
            before.desired_count, now.desired_count
        ));
    }
    // Tasks ECS is stopping (ours in flight among them) are left out of both counts: they were counted as gone.
    let (was, is) = (planned_on.running_of(name), fresh.running_of(name));
    if is < was {
        return Err(format!(
            "the service has fewer running tasks than when the stop was planned ({was} → {is})"
        ));
    }
    Ok(())
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
    match &action.mv {
        Move::StopTask {
            task_arn,
            service_name,
            container_instance_arn,
        } => {
            service_as_planned(service_name, planned_on, fresh)?;
            let t = fresh.task(task_arn).ok_or("the task is gone")?;
            if t.desired_status == TaskStatus::Stopped {
                return Err("the task is already stopping".into());
            }
            if t.container_instance_arn.as_deref() != Some(container_instance_arn.as_str()) {
                return Err("the task is on another instance".into());
            }
            if protected(task_arn) {
                return Err("the task has scale-in protection now".into());
            }
        }
        Move::RedeployService { service_name } => {
            let (before, current) = (
                planned_on.service(service_name),
                fresh.service(service_name).ok_or("the service is gone")?,
            );
            let ids = |s: &crate::model::Service| s.deployments.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
            if before.map(ids) != Some(ids(current)) {
                return Err("the service's deployments changed".into());
            }
            if let Some(t) = fresh
                .tasks_of(service_name)
                .find(|t| t.is_live() && protected(&t.task_arn))
            {
                return Err(format!(
                    "task {} of the service has scale-in protection now",
                    t.task_arn
                ));
            }
        }
        Move::DrainInstance {
            container_instance_arn: arn,
            ..
        } => {
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

/// ECS's clock at a claim: the newest `createdAt` of the observed tasks and `registeredAt` of the observed
/// instances, or the Unix epoch when none has one (then every task with a `createdAt` is newer). See
/// [`ActionRecord::seen_until`].
pub(super) fn seen_until(observed: &Cluster) -> DateTime<Utc> {
    let created = observed.tasks().iter().filter_map(|t| t.created_at);
    let registered = observed.instances().iter().filter_map(|i| i.registered_at);
    created.chain(registered).max().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Deployment, DeploymentStatus, Snapshot};
    use crate::plan::{Episode, LedgerView};
    use crate::scenarios::builder::{instance, service, ClusterBuilder};

    /// Four tasks of `web` (floor 2) on one instance, two empty ones: the plan stops two.
    fn four_on_one() -> Snapshot {
        ClusterBuilder::new("c")
            .instance(instance("hot"))
            .instance(instance("cold1"))
            .instance(instance("cold2"))
            .service(service("web").spread("instanceId").deployment(50, 200))
            .tasks("web", "hot", 4)
            .snapshot()
    }

    fn stops(planned_on: &Cluster) -> Vec<PlannedAction> {
        let text =
            "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: p}\nspec:\n  clusters: [c]\n  \
                    metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  actions: [stop-tasks]\n  \
                    budgets: {maxUnavailable: 20, perHour: 100, perService: 100%}\n";
        let policy = crate::policy::load_str(std::path::Path::new("p.yaml"), text)
            .unwrap()
            .remove(0);
        let now = planned_on.snapshot().captured_at.unwrap_or_else(Utc::now);
        let plan = crate::plan::plan(planned_on, &policy, &LedgerView::default(), now, Episode::default());
        assert!(!plan.actions.is_empty(), "{:#?}", plan.skipped);
        plan.actions
    }

    #[test]
    fn a_stop_is_not_sent_once_its_service_lost_a_task_or_started_a_rollout_since_the_plan() {
        let planned_on = Cluster::new(four_on_one()).unwrap();
        let actions = stops(&planned_on);
        let now = Utc::now();
        let stop = &actions[0];
        let Move::StopTask { task_arn, .. } = &stop.mv else {
            panic!("{stop:?}")
        };
        assert_eq!(still_valid(stop, &planned_on, &planned_on, now), Ok(()));

        // Another task of the service crashed meanwhile: the floor the plan counted no longer holds.
        let mut crashed = four_on_one();
        let other = crashed.tasks.iter_mut().find(|t| &t.task_arn != task_arn).unwrap();
        other.desired_status = TaskStatus::Stopped;
        let why = still_valid(stop, &planned_on, &Cluster::new(crashed).unwrap(), now).unwrap_err();
        assert!(why.contains("fewer running tasks"), "{why}");

        // A deployment started meanwhile (someone's CI): ECS will replace tasks itself.
        let mut rolling = four_on_one();
        let web = &mut rolling.services[0];
        let primary = web.deployments[0].clone();
        web.deployments = vec![
            Deployment {
                id: "ecs-svc/new".into(),
                status: DeploymentStatus::Primary,
                ..primary.clone()
            },
            Deployment {
                status: DeploymentStatus::Active,
                ..primary
            },
        ];
        let why = still_valid(stop, &planned_on, &Cluster::new(rolling).unwrap(), now).unwrap_err();
        assert!(why.contains("deployments changed"), "{why}");

        // The desired count was lowered (a scale-in): ECS is stopping tasks of its own.
        let mut scaled_in = four_on_one();
        scaled_in.services[0].desired_count = 3;
        let why = still_valid(stop, &planned_on, &Cluster::new(scaled_in).unwrap(), now).unwrap_err();
        assert!(why.contains("desired count changed"), "{why}");
    }
}

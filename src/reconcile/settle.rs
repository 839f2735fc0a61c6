//! Settling: each move in flight finished from what ECS shows now, in ECS's identifiers and clock (a stop's
//! `stoppedReason`, a redeploy's deployment ids, a drain's remaining tasks), then verified and cooled down.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Controller, CycleError, ACTION_DEADLINE, LOG};
use crate::ecs::{EcsApi, InstanceState};
use crate::ledger::{ActionRecord, ActionState, CooldownTarget, Ledger};
use crate::model::{Cluster, InstanceStatus, RolloutState, SchedulingStrategy, Task, TaskStatus};

impl<E: EcsApi + Sync, L: Ledger + Sync> Controller<'_, E, L> {
    /// Finishes what is in flight, from what ECS shows now.
    pub(super) async fn settle(
        &mut self,
        cluster: &Cluster,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, ActionState, String)>, CycleError> {
        let mut finished = Vec::new();
        for r in self.ledger.in_flight(&self.cluster).await? {
            // Settling may set a drained instance ACTIVE again; a replica that cannot prove its lease leaves every
            // record as it is for the leader (an overdue drain recorded failed without its revert would strand it).
            if self.fence().is_err() {
                tracing::warn!(target: LOG, "the lease cannot be proven fresh: leaving in-flight actions to the leader");
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
                tracing::info!(target: LOG, action = %r.id, "already settled by another replica");
                continue;
            }
            tracing::info!(target: LOG, action = %r.id, state = state.as_str(), outcome = %outcome, "settled");
            if state == ActionState::Done {
                self.start_cooldowns(&r, now).await?;
            }
            finished.push((r.id.clone(), state, outcome));
        }
        Ok(finished)
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
                tracing::warn!(target: LOG, action = %r.id, error = %e, "setting the instance ACTIVE again failed; retrying next cycle");
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

//! Settling: each move in flight finished from what ECS shows now, in ECS's identifiers and clock (a stop's
//! `stoppedReason`, a redeploy's deployment ids, a drain's remaining tasks), then verified and cooled down.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Controller, CycleError, Settled, ACTION_DEADLINE, LOG};
use crate::ecs::{EcsApi, InstanceState};
use crate::ledger::{ActionLog, ActionRecord, ActionState, CooldownTarget, Ledger};
use crate::model::{Cluster, InstanceStatus, RolloutState, SchedulingStrategy, Task, TaskStatus};
use crate::moves::Move;

impl<E: EcsApi + Sync, L: Ledger + Sync> Controller<'_, E, L> {
    /// Finishes what is in flight, from what ECS shows now. Returns what finished, and the cluster's action log as it
    /// stands after (what this replica settled is written into it as into the table), or `None` when another
    /// replica settled a record meanwhile and the log must be read again.
    pub(super) async fn settle(
        &mut self,
        cluster: &Cluster,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Settled>, Option<ActionLog>), CycleError> {
        let mut finished = Vec::new();
        let mut log = self
            .ledger
            .read_actions(&self.cluster, DateTime::<Utc>::MIN_UTC)
            .await?;
        let mut current = true;
        for u in &log.unreadable {
            tracing::warn!(target: LOG,
                item = %u.key,
                targets = ?u.targets,
                error = %u.describe(),
                "a ledger item cannot be read: what it names is left alone until it is repaired or deleted"
            );
        }
        for at in 0..log.records.len() {
            let r = &log.records[at];
            if !r.state.in_flight() {
                continue;
            }
            // Settling may set a drained instance ACTIVE again; a replica that cannot prove its lease leaves every
            // record as it is for the leader (an overdue drain recorded failed without its revert would strand it).
            if self.fence().is_err() {
                tracing::warn!(target: LOG, "the lease cannot be proven fresh: leaving in-flight actions to the leader");
                break;
            }
            let overdue = now - r.claimed_at > chrono::Duration::from_std(ACTION_DEADLINE).unwrap_or_default();
            let verdict = match &r.mv {
                Move::StopTask {
                    task_arn, service_name, ..
                } => settle_stop(r, task_arn, service_name, cluster),
                Move::RedeployService { service_name } => settle_redeploy(r, service_name, cluster),
                Move::DrainInstance {
                    container_instance_arn, ..
                } => self.settle_drain(r, container_instance_arn, cluster, overdue).await,
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
            if let Some(landed) = landed.map(|l| seen_at_claim(l, r, cluster)).filter(|l| !l.is_empty()) {
                if let Some(note) = self.verify(r, &landed, now).await? {
                    outcome.push_str(&note);
                }
            }
            if !self
                .ledger
                .update(&self.cluster, &r.id, state, Some(outcome.clone()), now)
                .await?
            {
                tracing::info!(target: LOG, action = %r.id, "already settled by another replica");
                current = false;
                continue;
            }
            tracing::info!(target: LOG, action = %r.id, state = state.as_str(), outcome = %outcome, "settled");
            if state == ActionState::Done {
                self.start_cooldowns(r, now).await?;
            }
            finished.push(Settled {
                id: r.id.clone(),
                kind: r.mv.kind(),
                state,
                outcome: outcome.clone(),
            });
            let r = &mut log.records[at];
            r.state = state;
            r.outcome = Some(outcome);
            r.updated_at = now;
        }
        Ok((finished, current.then_some(log)))
    }

    async fn start_cooldowns(&self, r: &ActionRecord, now: DateTime<Utc>) -> Result<(), CycleError> {
        let after = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
        if let Some(service) = r.mv.service_name() {
            self.ledger
                .set_cooldown(
                    &self.cluster,
                    CooldownTarget::Service(service.to_owned()),
                    after(self.policy.cooldown.service),
                )
                .await?;
        }
        if let Some(instance) = r.mv.container_instance_arn() {
            self.ledger
                .set_cooldown(
                    &self.cluster,
                    CooldownTarget::Instance(instance.to_owned()),
                    after(self.policy.cooldown.instance),
                )
                .await?;
        }
        Ok(())
    }

    /// A drain is finished by setting the instance ACTIVE again once its service tasks are gone, or reverted at the
    /// deadline. Only an instance ECS confirmed this record drained is ever set ACTIVE (docs/ecs.md: others drain
    /// too).
    async fn settle_drain(&self, r: &ActionRecord, arn: &str, cluster: &Cluster, overdue: bool) -> Verdict {
        let (moved_tasks, moved_services) = (r.mv.moved_tasks(), r.mv.moved_services());
        let Some(instance) = cluster.instance(arn) else {
            return Verdict::Done {
                outcome: "the instance is gone".into(),
                landed: None,
            };
        };
        match instance.status {
            // ECS never confirmed this drain (the controller stopped, or lost the call's answer, between the claim
            // and the reply), so this DRAINING may be someone else's: a Spot interruption, a scale-in hook, a
            // person. Setting it ACTIVE could undo theirs; it is left as it is, for a person to decide.
            InstanceStatus::Draining if r.state == ActionState::Claimed => {
                return Verdict::Failed(format!(
                    "the instance is DRAINING but ECS never confirmed this drain, so it may be someone else's: left \
                     DRAINING; if it is this controller's, set it ACTIVE with `aws ecs \
                     update-container-instances-state --cluster {} --container-instances {arn} --status ACTIVE`",
                    r.cluster
                ))
            }
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
            .tasks_on(arn)
            .filter(|t| t.desired_status != TaskStatus::Stopped)
            .filter(|t| {
                if moved_tasks.is_empty() {
                    t.service_name()
                        .and_then(|s| cluster.service(s))
                        .is_some_and(|s| s.scheduling_strategy != SchedulingStrategy::Daemon)
                } else {
                    moved_tasks.contains(&t.task_arn)
                }
            })
            .count();
        // A task is gone from the observation once ECS has set it to stop; a service with no room above its desired
        // count starts the replacement only after that, and it must not be placed back here: the instance stays
        // DRAINING until each moved service has its desired count running again.
        let short = moved_services
            .iter()
            .filter_map(|name| cluster.service(name))
            .find(|s| cluster.running_of(&s.service_name) < usize::try_from(s.desired_count).unwrap_or(usize::MAX));
        if (remaining > 0 || short.is_some()) && !overdue {
            return Verdict::Waiting;
        }
        if self.fence().is_err() {
            return Verdict::Deferred;
        }
        match self.ecs.set_instance_state(arn, InstanceState::Active).await {
            Ok(()) if remaining > 0 => Verdict::Failed(format!(
                "{remaining} service task(s) still on it at the deadline; set ACTIVE again"
            )),
            Ok(()) => match short {
                Some(s) => Verdict::Failed(format!(
                    "service {} still runs fewer tasks than desired at the deadline; set ACTIVE again",
                    s.service_name
                )),
                None => Verdict::Done {
                    outcome: if moved_tasks.is_empty() {
                        "emptied of service tasks and set ACTIVE again".into()
                    } else {
                        format!(
                            "its {} moved task(s) are gone and their services run their desired count; set ACTIVE \
                             again",
                            moved_tasks.len()
                        )
                    },
                    landed: None,
                },
            },
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
fn settle_stop(r: &ActionRecord, task_arn: &str, service_name: &str, cluster: &Cluster) -> Verdict {
    let task = cluster.task(task_arn);
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
    let Some(service) = cluster.service(service_name) else {
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
fn settle_redeploy(r: &ActionRecord, service_name: &str, cluster: &Cluster) -> Verdict {
    let Some(service) = cluster.service(service_name) else {
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

/// The instances of `landed` the planner could have seen: one that registered after the claim (ECS's clock) says
/// nothing about the prediction, whichever way the record names its landing.
fn seen_at_claim(mut landed: Vec<String>, r: &ActionRecord, cluster: &Cluster) -> Vec<String> {
    if let Some(since) = r.seen_until {
        landed.retain(|arn| {
            cluster
                .instance(arn)
                .and_then(|i| i.registered_at)
                .is_none_or(|at| at <= since)
        });
    }
    landed
}

fn short(cluster: &Cluster, arn: &str) -> String {
    cluster
        .instance(arn)
        .and_then(|i| i.ec2_instance_id.clone())
        .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or(arn).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moves::InstanceSet;
    use crate::reconcile::act::seen_until;
    use crate::scenarios::builder::{instance, service, ClusterBuilder};

    #[test]
    fn a_landing_is_judged_on_the_instances_there_at_the_claim_an_empty_new_one_included() {
        let cluster = |later: bool| {
            let mut b = ClusterBuilder::new("c")
                .instance(instance("busy").registered_at("2026-11-20T10:00:00Z"))
                // A scale-out just before the claim: registered after the newest task, and empty.
                .instance(instance("empty").registered_at("2026-11-21T09:00:00Z"));
            if later {
                b = b.instance(instance("later").registered_at("2026-11-22T00:00:00Z"));
            }
            b.service(service("web")).tasks("web", "busy", 2).build()
        };
        let at_claim = cluster(false);
        let r = ActionRecord {
            seen_until: Some(seen_until(&at_claim)),
            ..ActionRecord::stop_for_tests(InstanceSet::default(), InstanceSet::default())
        };
        let now = cluster(true);
        let arn = |id: &str| instance(id).arn();
        let landed = vec![arn("busy"), arn("empty"), arn("later")];
        assert_eq!(seen_at_claim(landed, &r, &now), [arn("busy"), arn("empty")]);
    }
}

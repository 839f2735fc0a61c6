//! Drain an instance, then set it ACTIVE again once its movable tasks have moved (a partial drain the ledger owns).
//!
//! What ECS does with a DRAINING instance (`docs/ecs.md`, draining): no new placements; each service task is
//! replaced within its service's minimum and maximum percent, the replacement started **before** the old task stops
//! when `maximumPercent` of the desired count, rounded down, is above it, stopped first otherwise; a service whose
//! floor and ceiling are both its desired count (100 % and 100 %, or 150 % of one task) can never be moved this
//! way, so its task stays; standalone tasks stay; daemon tasks stop, and start again when the
//! instance is ACTIVE. The controller sets the instance ACTIVE again as soon as the tasks it expected to move are
//! gone, so what ECS cannot move never keeps it DRAINING.
//!
//! A drain empties an instance that the next cycles then refill, so it is judged by that settled state: the
//! drained instance back at the mean, the load it takes coming off every other instance in proportion, and the
//! restarts of that refill charged to the drain. Only stops and redeploys refill it: when the policy allows
//! neither, the drain is judged as ECS leaves the instance.

use std::collections::{BTreeMap, BinaryHeap};

use crate::model::{InstanceIdx, SchedulingStrategy, TaskIdx, TaskStatus};
use crate::policy::ActionKind;

use super::budget::{paced_unavailable, Cost};
use super::load::{Contribution, Stats};
use super::safety::SkipReason;
use super::search::{Candidate, Move, Prediction, Relocation, Search, MAX_BULK_PREDICTIONS};
use super::state::{Delta, EPSILON};

impl Search<'_> {
    /// Drain candidates: the hottest instances.
    pub(super) fn seed_drains(&mut self, heap: &mut BinaryHeap<Candidate>) {
        if !self.policy().allows(ActionKind::DrainInstances) {
            return;
        }
        for hot in self.state.above_mean().into_iter().take(MAX_BULK_PREDICTIONS) {
            self.enqueue(heap, Move::Drain { instance: hot.instance });
        }
    }

    /// Whether the instance may be drained at all: not planned already, no drain of it in flight, not cooling down.
    fn drain_may_start(&self, instance: InstanceIdx) -> Result<(), SkipReason> {
        let arn = self.state.arn(instance);
        if self.state.drained.contains(&instance) {
            return Err(SkipReason::Planned);
        }
        self.ledger.instance_free(arn)?;
        if self
            .ledger
            .attempted(&crate::moves::Move::drain_id(arn, self.cluster()))
        {
            return Err(SkipReason::Attempted);
        }
        if let Some(until) = self.ledger.instance_cooling_until(arn, self.now) {
            return Err(SkipReason::InstanceCoolingDown(until));
        }
        Ok(())
    }

    pub(super) fn predict_drain(&mut self, instance: InstanceIdx) -> Result<Prediction, SkipReason> {
        self.drain_may_start(instance)?;
        let Drained {
            moves,
            daemons,
            per_service,
        } = self.drained_tasks(instance)?;
        let cluster = self.cluster();
        let state = &self.state;
        let mut overlay = state.overlay.clone();
        overlay.exclude(instance, "being drained");
        let mut delta = state.delta();
        let mut relocations = Vec::with_capacity(moves.len());
        let mut landing: Vec<InstanceIdx> = Vec::new();
        let mut moved_total = 0.0;
        for m in &moves {
            let c = state
                .model
                .contribution(cluster, instance, cluster.task_at(m.task))
                .ok_or(SkipReason::UnknownLoad)?;
            moved_total += c.amount;
            let request = &self.ready(&m.service)?.request;
            let source = state.load_of(&delta, instance);
            let landed = if m.start_first {
                let landed = state.place(request, &mut overlay, &mut delta, c, source)?;
                overlay
                    .stop(cluster, m.task)
                    .map_err(|e| SkipReason::Unpredictable(e.0))?;
                state.remove(&mut delta, instance, c);
                landed
            } else {
                overlay
                    .stop(cluster, m.task)
                    .map_err(|e| SkipReason::Unpredictable(e.0))?;
                state.remove(&mut delta, instance, c);
                state.place(request, &mut overlay, &mut delta, c, source)?
            };
            if m.az_rebalancing {
                state.keeps_zone(instance, &landed)?;
            }
            landing.extend_from_slice(&landed.ties);
            relocations.push(Relocation {
                task: m.task,
                to: landed.pick,
            });
        }
        landing.sort_unstable();
        landing.dedup();
        state.no_hotter_landing(&delta)?;
        let score = delta.expected();
        #[allow(clippy::cast_precision_loss)] // task counts
        let each = Contribution {
            amount: moved_total / moves.len() as f64,
        };
        // Only a stop or a redeploy refills the instance: with neither allowed, it stays as ECS leaves it.
        let refills = self.policy().allows(ActionKind::StopTasks) || self.policy().allows(ActionKind::RedeployServices);
        let (judged, refill) = if refills {
            settled(&delta, instance, state.model.delta(instance, each, 1.0))
        } else {
            (score, 0)
        };
        let (loads, stats) = delta.into_outcome();
        let unavailable = per_service
            .iter()
            .filter_map(|(name, n)| cluster.service(name).map(|s| paced_unavailable(s, *n)))
            .sum();
        let restarted = u32::try_from(moves.len()).unwrap_or(u32::MAX) + daemons;
        Ok(Prediction {
            overlay,
            relocations,
            loads,
            stats,
            score,
            judged,
            charged: restarted.saturating_add(refill),
            cost: Cost {
                restarted,
                unavailable,
                stops: Vec::new(),
                drain: true,
            },
            landing,
            improving: Vec::new(),
        })
    }
    /// What draining the instance would do to its tasks, or why it may not be drained: a task already moved by a
    /// planned move, a task ECS would move that is excluded, protected or of a service the planner may not move,
    /// nothing ECS would move, or stops of the services it moves planned this cycle.
    fn drained_tasks(&mut self, instance: InstanceIdx) -> Result<Drained, SkipReason> {
        let cluster = self.cluster();
        let mut moves: Vec<Moved> = Vec::new();
        let mut daemons = 0u32;
        let mut per_service: BTreeMap<String, u32> = BTreeMap::new();
        for &t in cluster.task_indexes_on(instance) {
            let task = cluster.task_at(t);
            if task.desired_status == TaskStatus::Stopped {
                continue;
            }
            if self.state.moved.contains(&t) {
                return Err(SkipReason::Planned);
            }
            let Some(service) = task.service_name() else {
                continue; // standalone: ECS leaves it, and the instance goes ACTIVE again without waiting for it
            };
            let svc = cluster.service(service).ok_or(SkipReason::Inconsistent)?;
            if let Some(why) = self.policy().exclude.service_reason(svc) {
                return Err(SkipReason::DrainBlocked(format!(
                    "ECS would move task {} of service {service}, which is excluded: {why}",
                    task.task_arn
                )));
            }
            if self.is_protected(task) {
                return Err(SkipReason::DrainBlocked(format!("task {} is protected", task.task_arn)));
            }
            if svc.scheduling_strategy == SchedulingStrategy::Daemon {
                daemons += 1;
                continue;
            }
            if super::safety::no_room_to_move(svc) {
                continue; // it stays
            }
            let az_rebalancing = match self.service_ctx(service) {
                Ok(ctx) => ctx.az_rebalancing,
                Err(reason) => return Err(SkipReason::DrainBlocked(format!("service {service}: {reason}"))),
            };
            *per_service.entry(service.to_owned()).or_default() += 1;
            moves.push(Moved {
                task: t,
                service: service.to_owned(),
                start_first: svc.starts_first(),
                az_rebalancing,
            });
        }
        if moves.is_empty() {
            return Err(SkipReason::DrainBlocked("no service tasks ECS would move".into()));
        }
        for service in per_service.keys() {
            if self.ready(service)?.planned > 0 {
                return Err(SkipReason::DrainBlocked(format!(
                    "stops of service {service} are planned this cycle"
                )));
            }
        }
        Ok(Drained {
            moves,
            daemons,
            per_service,
        })
    }
}

/// What draining an instance does to its tasks.
struct Drained {
    /// The tasks ECS will move, in their order on the instance.
    moves: Vec<Moved>,
    /// Daemon tasks: stopped, and started again once the instance is ACTIVE.
    daemons: u32,
    /// Tasks moved per service.
    per_service: BTreeMap<String, u32>,
}

/// A task a drain expects ECS to move.
struct Moved {
    task: TaskIdx,
    service: String,
    /// Whether ECS starts its replacement before it stops it (its ceiling above the desired count).
    start_first: bool,
    /// Whether its service has ECS's AZ rebalancing on: then it may only land in the drained instance's zone.
    az_rebalancing: bool,
}

/// The score once the drained instance is refilled to the mean, and how many tasks that refill restarts (`step`:
/// the load one task adds to the drained instance). The refill is taken from every other instance in proportion to
/// its load: it is the later moves' business to take it from the busiest, and they are valued when they are made.
fn settled(delta: &Delta<'_>, drained: InstanceIdx, step: f64) -> (f64, u32) {
    let mut loads = delta.loads();
    let Some(left) = loads[drained.get()] else {
        return (delta.stats.score(), 0);
    };
    let stats = delta.stats;
    let mean = if stats.n > 0.0 { stats.sum / stats.n } else { 0.0 };
    let need = mean - left;
    let others = stats.sum - left;
    if need <= EPSILON || others <= EPSILON {
        return (stats.score(), 0);
    }
    let keep = (others - need) / others;
    for (i, l) in loads.iter_mut().enumerate() {
        if let Some(l) = l.as_mut() {
            *l = if i == drained.get() { mean } else { *l * keep };
        }
    }
    let mut settled = Stats::of(&loads);
    settled.sum_sq += delta.noise() * keep * keep;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small positive count
    let refill = if step > EPSILON { (need / step).ceil() as u32 } else { 0 };
    (settled.score(), refill)
}

//! Stop one service task: ECS stops it first (its healthy floor is not consulted, `docs/ecs.md` StopTask), then the
//! service scheduler starts a replacement where the service's placement strategy says, on the cluster as it is
//! without the stopped task.

use std::collections::BinaryHeap;

use crate::model::{InstanceIdx, TaskIdx, TaskStatus};

use super::budget::Cost;
use super::load::{sort_hottest_first, LoadAt};
use super::safety::SkipReason;
use super::search::{Candidate, Move, Prediction, Relocation, Search, MAX_PREDICTIONS};
use super::state::{Luck, EPSILON};

/// A run of one service's stops played out on the state ([`Search::stop_run`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct StopRun {
    /// The score drop of the whole run.
    pub gain: f64,
    /// The stops in it, each paying off.
    pub made: u32,
    /// It ended at a task on an instance above the mean whose stop no longer pays off wherever its replacement
    /// could land: load of the service that no stop moves.
    pub stuck: bool,
}

impl StopRun {
    /// The average score drop per restart.
    pub fn value(&self) -> f64 {
        self.gain / f64::from(self.made)
    }
}

impl Search<'_> {
    /// Stop candidates: one prediction per (service, source), hottest sources first.
    pub(super) fn seed_stops(&mut self, heap: &mut BinaryHeap<Candidate>) {
        let policy = self.policy();
        if !policy.allows(crate::policy::ActionKind::StopTasks)
            && !policy.allows(crate::policy::ActionKind::RedeployServices)
        {
            return;
        }
        let mut predictions = 0;
        'sources: for LoadAt { instance: source, .. } in self.state.above_mean() {
            let arn = self.state.arn(source);
            if let Some(until) = self.ledger.instance_cooling_until(arn, self.now) {
                self.skip(arn, &SkipReason::InstanceCoolingDown(until));
                continue;
            }
            for (service, tasks) in self.movable_tasks(source) {
                if predictions >= MAX_PREDICTIONS {
                    break 'sources;
                }
                predictions += 1;
                self.enqueue(heap, Move::Stop { service, source, tasks });
            }
        }
    }

    /// The tasks on a source that a stop could move, grouped by service; the rest are recorded as skipped.
    fn movable_tasks(&mut self, source: InstanceIdx) -> Vec<(String, Vec<TaskIdx>)> {
        let cluster = self.cluster();
        let mut groups: Vec<(String, Vec<TaskIdx>)> = Vec::new();
        for &t in cluster.task_indexes_on(source) {
            let task = cluster.task_at(t);
            if task.desired_status == TaskStatus::Stopped || self.state.moved.contains(&t) {
                continue;
            }
            let Some(service) = task.service_name() else {
                self.skip(&task.task_arn, &SkipReason::Standalone);
                continue;
            };
            if self.is_protected(task) {
                self.skip(&task.task_arn, &SkipReason::Protected);
                continue;
            }
            if let Err(reason) = self.ledger.task_free(&task.task_arn) {
                self.skip(&task.task_arn, &reason);
                continue;
            }
            if self.ledger.attempted(&crate::moves::Move::stop_id(&task.task_arn)) {
                self.skip(&task.task_arn, &SkipReason::Attempted);
                continue;
            }
            if self.service_ctx(service).is_err() {
                continue;
            }
            match groups.iter_mut().find(|(s, _)| s == service) {
                Some((_, list)) => list.push(t),
                None => groups.push((service.to_owned(), vec![t])),
            }
        }
        groups
    }

    pub(super) fn predict_stop(
        &mut self,
        service: &str,
        source: InstanceIdx,
        tasks: &[TaskIdx],
    ) -> Result<Prediction, SkipReason> {
        let t = *tasks
            .iter()
            .find(|t| !self.state.moved.contains(t))
            .ok_or(SkipReason::Planned)?;
        if self.state.drained.contains(&source) {
            return Err(SkipReason::SourceDrained);
        }
        if self.redeploy_preferred.contains(service) {
            return Err(SkipReason::RedeployPreferred);
        }
        let luck = self.state.luck;
        let ctx = self.service_ctx(service)?;
        if ctx.redeploy_planned {
            return Err(SkipReason::RedeployPlanned);
        }
        if ctx.drain_planned {
            return Err(SkipReason::DrainPlanned);
        }

        // StopTask stops first: the service runs one task short until the replacement is RUNNING. The planner's
        // stops of one cycle run at once; the reference's run one after another.
        let running = match luck {
            Luck::Odds => ctx.running.saturating_sub(ctx.planned),
            Luck::Lucky => ctx.running,
        };
        if running <= ctx.floor {
            return Err(SkipReason::BelowFloor {
                running,
                floor: ctx.floor,
            });
        }
        let az_rebalancing = ctx.az_rebalancing;
        let cluster = self.cluster();
        let task = cluster.task_at(t);
        let state = &self.state;
        let contribution = state
            .model
            .contribution(cluster, source, task)
            .ok_or(SkipReason::UnknownLoad)?;
        let src_load = state.load(source).ok_or(SkipReason::UnknownLoad)?;
        let mut overlay = state.overlay.clone();
        overlay.stop(cluster, t).map_err(|e| SkipReason::Unpredictable(e.0))?;
        let mut delta = state.delta();
        state.remove(&mut delta, source, contribution);
        let request = &self.ready(service)?.request;
        let landed = state.place(request, &mut overlay, &mut delta, contribution, Some(src_load))?;
        if landed.ties == [source] {
            return Err(SkipReason::LandsOnSource);
        }
        state.no_hotter_landing(&delta)?;
        if az_rebalancing {
            state.keeps_zone(source, &landed)?;
        }
        let score = delta.expected();
        let (loads, stats) = delta.into_outcome();
        Ok(Prediction {
            overlay,
            relocations: vec![Relocation {
                task: t,
                to: landed.pick,
            }],
            loads,
            stats,
            score,
            judged: score,
            charged: 1,
            cost: Cost {
                restarted: 1,
                unavailable: 1,
                stops: vec![service.to_owned()],
                drain: false,
            },
            landing: landed.ties,
            improving: Vec::new(),
        })
    }

    /// Up to `steps` stops of the service, each from the busiest instance that has one of its tasks, played out on
    /// the state and then undone: their total score drop, how many paid off before the first that did not, and
    /// whether that one was left above the mean. `None` when no stop of it pays off.
    pub(super) fn stop_run(&mut self, service: &str, steps: usize) -> Option<StopRun> {
        let saved = (
            self.state.overlay.clone(),
            self.state.loads.clone(),
            self.state.stats,
            self.state.moved.clone(),
        );
        let start = self.state.score();
        let mut made = 0u32;
        let mut stuck = false;
        self.state.typical = true;
        for _ in 0..steps {
            let cluster = self.cluster();
            // The service's tasks that may still move, each with its instance's load.
            let mut tasks: Vec<(TaskIdx, LoadAt)> = cluster
                .tasks_of(service)
                .filter(|t| t.desired_status != TaskStatus::Stopped)
                .filter_map(|t| {
                    let k = cluster.task_index(&t.task_arn)?;
                    let instance = cluster.instance_index(t.container_instance_arn.as_deref()?)?;
                    let load = self.state.load(instance)?;
                    (!self.state.moved.contains(&k) && !self.is_protected(t)).then_some((k, LoadAt { instance, load }))
                })
                .collect();
            sort_hottest_first(&mut tasks, |(k, at)| (at.load, *k));
            let Some(&(task, LoadAt { instance: source, load })) = tasks.first() else {
                break;
            };
            let before = self.state.score();
            let p = match self.predict_stop(service, source, &[task]) {
                Ok(p) if p.value(before) > EPSILON => p,
                // Where its replacement could land makes the stop worthless: no stop moves this load.
                Ok(_)
                | Err(
                    SkipReason::NoGain
                    | SkipReason::HotterLanding { .. }
                    | SkipReason::LandsOnSource
                    | SkipReason::NoLanding,
                ) => {
                    stuck = load > self.state.mean() + EPSILON;
                    break;
                }
                Err(_) => break,
            };
            self.state.overlay = p.overlay;
            self.state.moved.insert(task);
            self.state.apply(&p.loads, p.stats);
            made += 1;
        }
        self.state.typical = false;
        let end = self.state.score();
        (self.state.overlay, self.state.loads, self.state.stats, self.state.moved) = saved;
        (made > 0).then_some(StopRun {
            gain: start - end,
            made,
            stuck,
        })
    }

    /// Of a stop's tied landings, the ones where it lowers the score (its odds, for the plan and the ledger):
    /// computed for accepted stops only, on the state before them.
    pub(super) fn improving(&self, source: InstanceIdx, task: TaskIdx, ties: &[InstanceIdx]) -> Vec<InstanceIdx> {
        let state = &self.state;
        let cluster = self.cluster();
        let (Some(c), Some(src_load)) = (
            state.model.contribution(cluster, source, cluster.task_at(task)),
            state.load(source),
        ) else {
            return Vec::new();
        };
        let before = state.score();
        let src_new = src_load + state.model.delta(source, c, -1.0);
        let without = state.stats.replace(src_load, src_new);
        ties.iter()
            .copied()
            .filter(|&t| {
                let base = if t == source { Some(src_new) } else { state.load(t) };
                base.is_some_and(|l| without.replace(l, l + state.model.delta(t, c, 1.0)).score() < before - EPSILON)
            })
            .collect()
    }
}

//! Force a new deployment of a service: ECS replaces every task, rolling within the service's minimum and maximum
//! percent. With `maximumPercent` above 100 it starts new tasks before it stops old ones (`docs/ecs.md`,
//! UpdateService), in batches of the room above the desired count, so each new task is placed while the old tasks
//! still run and count for the strategy. With `maximumPercent` 100 it would stop first; that is a stop the planner
//! can already make one task at a time, so such a service is not redeployed.

use std::collections::BinaryHeap;

use crate::model::{InstanceIdx, TaskIdx, TaskStatus};

use super::budget::{paced_unavailable, Cost};
use super::load::sort_hottest_first;
use super::safety::SkipReason;
use super::search::{Candidate, Move, Prediction, Relocation, Search, MAX_BULK_PREDICTIONS};
use super::state::EPSILON;

/// Stops of one service played out to compare with its redeploy, at most.
pub const LOOKAHEAD: usize = 12;

impl Search<'_> {
    /// Redeploy candidates: the services a stop could not move for their floor (a deployment starts each
    /// replacement first, so a 100 %-minimum service can move this way), then the services with the most load on
    /// instances above the mean.
    pub(super) fn seed_redeploys(&mut self, heap: &mut BinaryHeap<Candidate>) {
        if !self.policy().allows(crate::policy::ActionKind::RedeployServices) {
            return;
        }
        // The services a stop could not move for their floor first, then those most on instances above the mean.
        let mut wanted = self.redeploy_wanted.clone();
        {
            let mean = self.state.mean();
            let cluster = self.cluster();
            let mut heat: Vec<(f64, &str)> = cluster
                .services()
                .iter()
                .map(|s| {
                    let over: f64 = cluster
                        .tasks_of(&s.service_name)
                        .filter_map(|t| t.container_instance_arn.as_deref())
                        .filter_map(|a| cluster.instance_index(a))
                        .filter_map(|i| self.state.load(i))
                        .map(|l| (l - mean).max(0.0))
                        .sum();
                    (over, s.service_name.as_str())
                })
                .filter(|(over, _)| *over > EPSILON)
                .collect();
            sort_hottest_first(&mut heat, |&(over, name)| (over, name));
            for (_, name) in heat {
                if !wanted.iter().any(|w| w == name) {
                    wanted.push(name.to_owned());
                }
            }
        }
        for service in wanted.into_iter().take(MAX_BULK_PREDICTIONS) {
            if self.policy().allows(crate::policy::ActionKind::StopTasks) && self.redeploy_beats_stops(&service) {
                self.redeploy_preferred.insert(service.clone());
            }
            self.enqueue(heap, Move::Redeploy { service });
        }
    }

    /// Whether a redeploy of the service is worth more than the run of stops that would move its tasks one by one.
    /// The greedy compares single moves, and the first stop of a service often has the best odds of all: taking it
    /// spoils the deterministic fill a deployment would make (its new tasks take the instances with none of the
    /// service first, while the old ones still run), and each stop after it has worse odds. So the service's stops
    /// are played out on the state, up to as many as the redeploy restarts (at most [`LOOKAHEAD`]), and its stops
    /// are left for the redeploy when
    /// - the run is worth less per restart than the redeploy, or
    /// - the run could reach every task the redeploy restarts, gets stuck (a task of the service left on an
    ///   instance above the mean that no stop moves, for where its replacement could land), and gains less in all
    ///   than the redeploy: what such a run leaves behind no later stop moves, and a redeploy after it would undo
    ///   its fill. The redeploy is dearer per restart but goes further (issue 13: mixed instance sizes). Whether
    ///   going further pays off depends on the other services' moves: [`super::plan`] checks it (`further`).
    fn redeploy_beats_stops(&mut self, service: &str) -> bool {
        let Ok(redeploy) = self.predict_redeploy(service) else {
            return false;
        };
        let before = self.state.score();
        let value = redeploy.value(before);
        if value <= EPSILON {
            return false;
        }
        let restarted = usize::try_from(redeploy.cost.restarted).unwrap_or(usize::MAX);
        let steps = restarted.min(LOOKAHEAD);
        let Some(run) = self.stop_run(service, steps) else {
            return true;
        };
        if value >= run.value() {
            return true;
        }
        let further = self.further && steps == restarted && run.stuck && before - redeploy.judged > run.gain + EPSILON;
        self.went_further |= further;
        further
    }

    pub(super) fn predict_redeploy(&mut self, service: &str) -> Result<Prediction, SkipReason> {
        let cluster = self.cluster();
        let svc = cluster.service(service).ok_or(SkipReason::Inconsistent)?;
        if !svc.starts_first() {
            return Err(SkipReason::RedeployBlocked(format!(
                "maximumPercent {}% of {} task(s) rounds down to {}: ECS cannot start a replacement before stopping \
                 a task",
                svc.maximum_percent(),
                svc.desired_count,
                svc.max_tasks()
            )));
        }
        self.ledger.redeploy_free(service)?;
        if self
            .ledger
            .attempted(&crate::moves::Move::redeploy_id(service, cluster))
        {
            return Err(SkipReason::Attempted);
        }
        let mut old = self.replaced_tasks(service)?;
        let desired = svc.desired_count;
        let ctx = self.service_ctx(service)?;
        if ctx.redeploy_planned {
            return Err(SkipReason::Planned);
        }
        if ctx.planned > 0 {
            return Err(SkipReason::RedeployBlocked(
                "stops of the service are planned this cycle".into(),
            ));
        }
        let state = &self.state;
        // The hottest sources first: new task k is paired with the k-th hottest old task for the rule that no
        // landing may be busier than the instance a task leaves, and ECS is assumed to stop those first.
        sort_hottest_first(&mut old, |r| {
            (state.load(r.source).unwrap_or(f64::NEG_INFINITY), r.task)
        });
        let mut contributions = Vec::with_capacity(old.len());
        for r in &old {
            let c = state
                .model
                .contribution(cluster, r.source, cluster.task_at(r.task))
                .ok_or(SkipReason::UnknownLoad)?;
            contributions.push(c);
        }
        let batch = usize::try_from(svc.max_tasks().saturating_sub(desired).max(1)).unwrap_or(usize::MAX);
        let mut overlay = state.overlay.clone();
        let mut delta = state.delta();
        let mut relocations = Vec::with_capacity(old.len());
        let mut landing: Vec<InstanceIdx> = Vec::new();
        let request = &self.ready(service)?.request;
        for chunk in (0..old.len()).collect::<Vec<_>>().chunks(batch) {
            for &j in chunk {
                let source = state.load_of(&delta, old[j].source);
                let landed = state.place(request, &mut overlay, &mut delta, contributions[j], source)?;
                landing.extend_from_slice(&landed.ties);
                relocations.push(Relocation {
                    task: old[j].task,
                    to: landed.pick,
                });
            }
            for &j in chunk {
                overlay
                    .stop(cluster, old[j].task)
                    .map_err(|e| SkipReason::Unpredictable(e.0))?;
                state.remove(&mut delta, old[j].source, contributions[j]);
            }
        }
        landing.sort_unstable();
        landing.dedup();
        state.no_hotter_landing(&delta)?;
        let score = delta.expected();
        let (loads, stats) = delta.into_outcome();
        let n = u32::try_from(old.len()).unwrap_or(u32::MAX);
        Ok(Prediction {
            overlay,
            relocations,
            loads,
            stats,
            score,
            judged: score,
            charged: n,
            cost: Cost {
                restarted: n,
                unavailable: paced_unavailable(svc, desired),
                stops: Vec::new(),
                drain: false,
            },
            landing,
            improving: Vec::new(),
        })
    }

    /// The tasks a deployment of the service would replace, or why it may not: one of them is already moved by a
    /// planned move, on an instance planned to be drained or one the policy does not balance, or protected.
    fn replaced_tasks(&self, service: &str) -> Result<Vec<Replaced>, SkipReason> {
        let cluster = self.cluster();
        let mut old = Vec::new();
        for t in cluster
            .tasks_of(service)
            .filter(|t| t.desired_status != TaskStatus::Stopped)
        {
            let task = cluster.task_index(&t.task_arn).ok_or(SkipReason::Inconsistent)?;
            let source = t
                .container_instance_arn
                .as_deref()
                .and_then(|a| cluster.instance_index(a))
                .ok_or(SkipReason::Inconsistent)?;
            if self.state.moved.contains(&task) {
                return Err(SkipReason::Planned);
            }
            if self.state.drained.contains(&source) {
                return Err(SkipReason::SourceDrained);
            }
            if self.state.load(source).is_none() {
                // A deployment replaces every task, so it would move this one off an instance the policy does not
                // balance (excluded, unknown, not ACTIVE): not ours to touch.
                return Err(SkipReason::RedeployBlocked(format!(
                    "task {} runs on {}, which this policy does not balance",
                    t.task_arn,
                    self.state.instance_name(source)
                )));
            }
            if self.is_protected(t) {
                // Protection holds up a deployment (`docs/ecs.md`, task scale-in protection).
                return Err(SkipReason::RedeployBlocked(
                    "a task is protected, which holds up a deployment".into(),
                ));
            }
            old.push(Replaced { task, source });
        }
        if old.is_empty() {
            return Err(SkipReason::RedeployBlocked("no steady tasks to replace".into()));
        }
        Ok(old)
    }
}

/// A task a deployment replaces, and the instance it runs on.
struct Replaced {
    task: TaskIdx,
    source: InstanceIdx,
}

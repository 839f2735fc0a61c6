//! Candidate moves and the greedy choice among them.
//!
//! Every move is predicted with the placement engine on the state left by the moves chosen before it (an
//! [`Overlay`], never a copy of the cluster). A replacement may land on any instance of its candidate set, so a move
//! is accepted only when **every** landing lowers the score and none is the instance it left; the state then
//! assumes the worst landing, so later predictions stay conservative.
//!
//! Order of work, cheapest first: instances above the mean load are sources, hottest first; all tasks of one service
//! on one source are equivalent, so each (service, source) pair is predicted once; at most
//! [`MAX_PREDICTIONS`] stop predictions are made per cycle. Candidates go into a max-heap by predicted gain per
//! restarted task and are re-predicted when popped (lazy greedy): a move is accepted only if its fresh prediction
//! is still at least as good as the next candidate's last one.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::model::{Cluster, Task, TaskStatus};
use crate::placement::{Overlay, PlacementIndex, TaskRequest};
use crate::policy::{ActionKind, Policy};

use super::load::{Contribution, LoadModel, Stats};
use super::safety::{self, Skip, SkipReason};
use super::view::LedgerView;
use super::{Episode, InstanceLoad, LoadView, Plan, PlannedAction, Status};

/// Stop predictions per cycle, at most (each is one placement query).
pub const MAX_PREDICTIONS: usize = 4096;
/// Redeploy and drain predictions per cycle, at most each (each is many placement queries).
pub const MAX_BULK_PREDICTIONS: usize = 32;
/// Below this, a score change is noise.
const EPSILON: f64 = 1e-9;

/// Per-service facts the planner needs, computed once per cycle.
struct ServiceCtx {
    request: TaskRequest,
    floor: u32,
    running: u32,
    limit: u32,
    az_rebalancing: bool,
    /// Stops planned this cycle.
    planned: u32,
    redeploy_planned: bool,
}

/// What a candidate move is.
#[derive(Debug, Clone)]
enum Move {
    /// Stop one of `tasks` (all of one service on one source; the first not yet moved).
    Stop {
        service: String,
        source: usize,
        tasks: Vec<usize>,
    },
    Redeploy {
        service: String,
    },
    Drain {
        instance: usize,
    },
}

struct Candidate {
    /// Predicted score drop per restarted task, as last predicted.
    value: f64,
    mv: Move,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.value.total_cmp(&other.value) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value.total_cmp(&other.value)
    }
}

/// A prediction of one move on the current state.
struct Prediction {
    score: f64,
    /// Instances any replacement could land on.
    landing: Vec<usize>,
    /// The changes to apply if accepted: tasks stopped, tasks started (instance), loads changed.
    stops: Vec<usize>,
    starts: Vec<usize>,
    loads: Vec<(usize, f64)>,
    restarted: u32,
}

pub struct Search<'c> {
    cluster: &'c Cluster,
    policy: &'c Policy,
    ledger: &'c LedgerView,
    now: DateTime<Utc>,
    model: LoadModel,
    index: PlacementIndex<'c>,
    overlay: Overlay,
    loads: Vec<Option<f64>>,
    stats: Stats,
    services: HashMap<String, Result<ServiceCtx, SkipReason>>,
    moved: HashSet<usize>,
    drained: HashSet<usize>,
    restarted: u32,
    hour_used: u32,
    drains_planned: u32,
    /// Services whose stop was refused for their floor: a start-before-stop redeploy may still move them.
    redeploy_wanted: Vec<String>,
    actions: Vec<PlannedAction>,
    skipped: Vec<Skip>,
    skipped_targets: HashSet<(String, &'static str)>,
}

impl<'c> Search<'c> {
    pub fn new(cluster: &'c Cluster, policy: &'c Policy, ledger: &'c LedgerView, now: DateTime<Utc>) -> Search<'c> {
        let mut skipped = Vec::new();
        let scored: Vec<bool> = cluster
            .instances()
            .iter()
            .map(|i| match safety::instance_not_scored(i, policy, now) {
                None => true,
                Some(why) => {
                    let reason = SkipReason::InstanceNotScored(why);
                    skipped.push(Skip {
                        target: i.container_instance_arn.clone(),
                        reason: reason.to_string(),
                        label: reason.label(),
                    });
                    false
                }
            })
            .collect();
        let model = LoadModel::new(cluster, policy.metric, scored);
        let index = PlacementIndex::new(cluster);
        // Only scored instances with a known load may receive tasks: anything else is not ours to fill, or its
        // effect on the score is unknown.
        let mut overlay = Overlay::new();
        for (i, inst) in cluster.instances().iter().enumerate() {
            if inst.can_take_tasks() && model.load[i].is_none() {
                overlay.exclude(
                    i,
                    if model.scored[i] {
                        "its load is unknown"
                    } else {
                        "not balanced by this policy"
                    },
                );
            }
        }
        let loads = model.load.clone();
        let stats = Stats::of(&loads);
        Search {
            cluster,
            policy,
            ledger,
            now,
            model,
            index,
            overlay,
            loads,
            stats,
            services: HashMap::new(),
            moved: HashSet::new(),
            drained: HashSet::new(),
            restarted: 0,
            hour_used: ledger.restarted_in_last_hour(now),
            drains_planned: 0,
            redeploy_wanted: Vec::new(),
            actions: Vec::new(),
            skipped,
            skipped_targets: HashSet::new(),
        }
    }

    pub fn run(mut self, episode: Episode) -> Plan {
        let before = self.view(&self.model.load.clone(), self.stats.score());
        let score = before.score;
        let (trigger, target) = (self.policy.threshold.trigger, self.policy.threshold.target);
        let (unknown, total) = self.model.unknown_share();
        #[allow(clippy::cast_precision_loss)] // instance counts
        let share = if total == 0 { 0.0 } else { unknown as f64 / total as f64 };
        if share > self.policy.utilization.max_unknown_share {
            let summary = format!(
                "{unknown} of {total} instances have no {} data ({:.0}% > utilization.maxUnknownShare {:.0}%): \
                 planning nothing rather than guessing",
                self.policy.metric,
                share * 100.0,
                self.policy.utilization.max_unknown_share * 100.0
            );
            return self.finish(before, Status::Halted, summary, episode.active);
        }
        let rebalancing = score > trigger || (episode.active && score > target);
        if !rebalancing {
            let summary = if score <= target {
                format!("score {score:.3} is at or below the target {target}")
            } else {
                format!("score {score:.3} is not above the trigger {trigger}, and no rebalancing is under way")
            };
            return self.finish(before, Status::Balanced, summary, false);
        }

        let mut heap = BinaryHeap::new();
        self.seed_stops(&mut heap);
        self.seed_bulk(&mut heap);
        self.choose(&mut heap, target);

        let after_score = self.stats.score();
        let (status, summary) = if self.actions.is_empty() {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for skip in &self.skipped {
                *counts.entry(skip.label).or_default() += 1;
            }
            let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = top.iter().take(3).map(|(l, n)| format!("{l} ×{n}")).collect();
            (
                Status::NothingSafe,
                format!(
                    "score {score:.3} is above {}, but no move is both safe and predicted to help; most refused: {}",
                    if score > trigger { "the trigger" } else { "the target" },
                    top.join(", ")
                ),
            )
        } else {
            (
                Status::Planned,
                format!(
                    "{} move(s), {} task(s) restarted: score {score:.3} → {after_score:.3} or better",
                    self.actions.len(),
                    self.restarted
                ),
            )
        };
        self.finish(before, status, summary, true)
    }

    fn finish(self, before: LoadView, status: Status, summary: String, episode: bool) -> Plan {
        let after = self.view(&self.loads, self.stats.score());
        Plan {
            cluster: self.cluster.name().to_owned(),
            policy: self.policy.name.clone(),
            metric: self.policy.metric.to_string(),
            mode: self.policy.mode.to_string(),
            status,
            summary,
            trigger: self.policy.threshold.trigger,
            target: self.policy.threshold.target,
            episode,
            before,
            after,
            actions: self.actions,
            skipped: self.skipped,
        }
    }

    fn view(&self, loads: &[Option<f64>], score: f64) -> LoadView {
        LoadView {
            score,
            instances: self
                .cluster
                .instances()
                .iter()
                .enumerate()
                .map(|(i, inst)| InstanceLoad {
                    container_instance_arn: inst.container_instance_arn.clone(),
                    ec2_instance_id: inst.ec2_instance_id.clone(),
                    capacity: self.model.capacity[i],
                    load: loads[i],
                })
                .collect(),
        }
    }

    fn skip(&mut self, target: &str, reason: &SkipReason) {
        // One entry per target and kind of reason: a plan lists what was refused, not every retry.
        if self.skipped_targets.insert((target.to_owned(), reason.label())) {
            self.skipped.push(Skip {
                target: target.to_owned(),
                reason: reason.to_string(),
                label: reason.label(),
            });
        }
    }

    fn arn(&self, i: usize) -> &str {
        &self.cluster.instances()[i].container_instance_arn
    }

    /// The service's per-cycle facts, computed on first use.
    fn service_ctx(&mut self, name: &str) -> Result<&mut ServiceCtx, SkipReason> {
        if !self.services.contains_key(name) {
            let ctx = self.build_ctx(name);
            if let Err(reason) = &ctx {
                let target = self
                    .cluster
                    .service(name)
                    .map_or(name.to_owned(), |s| s.service_arn.clone());
                self.skip(&target, reason);
            }
            self.services.insert(name.to_owned(), ctx);
        }
        match self.services.get_mut(name) {
            Some(Ok(ctx)) => Ok(ctx),
            Some(Err(e)) => Err(e.clone()),
            None => Err(SkipReason::Inconsistent),
        }
    }

    /// The context of a service `service_ctx` has already accepted (shared borrow, for use beside the index).
    fn ready(&self, name: &str) -> Result<&ServiceCtx, SkipReason> {
        match self.services.get(name) {
            Some(Ok(ctx)) => Ok(ctx),
            Some(Err(e)) => Err(e.clone()),
            None => Err(SkipReason::Inconsistent),
        }
    }

    fn build_ctx(&self, name: &str) -> Result<ServiceCtx, SkipReason> {
        let service = self.cluster.service(name).ok_or(SkipReason::Inconsistent)?;
        safety::check_service(self.cluster, service, self.policy, self.ledger, self.now)?;
        let request = self
            .index
            .request_for_service(service)
            .map_err(|e| SkipReason::Unpredictable(e.0))?;
        let in_flight = self.ledger.stops_in_flight(name);
        Ok(ServiceCtx {
            request,
            floor: safety::floor(service),
            running: service.running_count.saturating_sub(in_flight),
            limit: self
                .policy
                .budgets
                .per_service
                .resolve(service.desired_count)
                .saturating_sub(in_flight),
            az_rebalancing: service.availability_zone_rebalancing.as_deref() == Some("ENABLED"),
            planned: 0,
            redeploy_planned: false,
        })
    }

    /// Stop candidates: one prediction per (service, source), hottest sources first.
    fn seed_stops(&mut self, heap: &mut BinaryHeap<Candidate>) {
        if !self.policy.allows(ActionKind::StopTasks) && !self.policy.allows(ActionKind::RedeployServices) {
            return;
        }
        let mean = if self.stats.n > 0.0 {
            self.stats.sum / self.stats.n
        } else {
            0.0
        };
        let mut sources: Vec<(usize, f64)> = self
            .loads
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.filter(|l| *l > mean + EPSILON).map(|l| (i, l)))
            .collect();
        sources.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut predictions = 0;
        'sources: for (source, _) in sources {
            let arn = self.arn(source).to_owned();
            if let Some(until) = self.ledger.instance_cooling_until(&arn, self.now) {
                self.skip(&arn, &SkipReason::InstanceCoolingDown(until));
                continue;
            }
            for (service, tasks) in self.movable_tasks(source) {
                if predictions >= MAX_PREDICTIONS {
                    break 'sources;
                }
                predictions += 1;
                let mv = Move::Stop {
                    service: service.clone(),
                    source,
                    tasks,
                };
                match self.predict(&mv) {
                    Ok(p) => heap.push(Candidate {
                        value: self.value(&p),
                        mv,
                    }),
                    Err(reason) => {
                        if matches!(reason, SkipReason::BelowFloor { .. }) && !self.redeploy_wanted.contains(&service) {
                            self.redeploy_wanted.push(service);
                        }
                        let target = self.first_task_arn(&mv);
                        self.skip(&target, &reason);
                    }
                }
            }
        }
    }

    /// Redeploy candidates (services a stop could not move for their floor) and drain candidates (the hottest
    /// instances).
    fn seed_bulk(&mut self, heap: &mut BinaryHeap<Candidate>) {
        if self.policy.allows(ActionKind::RedeployServices) {
            let wanted: Vec<String> = self
                .redeploy_wanted
                .iter()
                .take(MAX_BULK_PREDICTIONS)
                .cloned()
                .collect();
            for service in wanted {
                self.enqueue(heap, Move::Redeploy { service });
            }
        }
        if !self.policy.allows(ActionKind::DrainInstances) {
            return;
        }
        let mut hottest: Vec<(usize, f64)> = self
            .loads
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.map(|l| (i, l)))
            .collect();
        hottest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (instance, _) in hottest.into_iter().take(MAX_BULK_PREDICTIONS) {
            self.enqueue(heap, Move::Drain { instance });
        }
    }

    /// Predicts a move and queues it by value, or records why it is refused.
    fn enqueue(&mut self, heap: &mut BinaryHeap<Candidate>, mv: Move) {
        match self.predict(&mv) {
            Ok(p) => heap.push(Candidate {
                value: self.value(&p),
                mv,
            }),
            Err(reason) => {
                let target = self.target_of(&mv);
                self.skip(&target, &reason);
            }
        }
    }

    fn value(&self, p: &Prediction) -> f64 {
        (self.stats.score() - p.score) / f64::from(p.restarted.max(1))
    }

    /// Lazy greedy: re-predict the best candidate on the current state; accept it if it still beats the next.
    fn choose(&mut self, heap: &mut BinaryHeap<Candidate>, target: f64) {
        while let Some(candidate) = heap.pop() {
            if self.stats.score() <= target {
                break;
            }
            let prediction = match self.predict(&candidate.mv) {
                Ok(p) => p,
                Err(reason) => {
                    let target = self.target_of(&candidate.mv);
                    self.skip(&target, &reason);
                    continue;
                }
            };
            if let Err(reason) = self.within_budgets(&candidate.mv, prediction.restarted) {
                let target = self.target_of(&candidate.mv);
                self.skip(&target, &reason);
                continue;
            }
            let value = self.value(&prediction);
            if heap.peek().is_some_and(|next| value + EPSILON < next.value) {
                heap.push(Candidate {
                    value,
                    mv: candidate.mv,
                });
                continue;
            }
            self.accept(candidate.mv, prediction, heap);
        }
    }

    fn within_budgets(&self, mv: &Move, restarted: u32) -> Result<(), SkipReason> {
        let budgets = &self.policy.budgets;
        if self.restarted + restarted > budgets.per_cycle {
            return Err(SkipReason::CycleBudget {
                limit: budgets.per_cycle,
            });
        }
        if self.hour_used + self.restarted + restarted > budgets.per_hour {
            return Err(SkipReason::HourBudget {
                limit: budgets.per_hour,
            });
        }
        if matches!(mv, Move::Drain { .. })
            && self.ledger.drains_in_flight() + self.drains_planned >= budgets.concurrent_drains
        {
            return Err(SkipReason::ConcurrentDrains {
                limit: budgets.concurrent_drains,
            });
        }
        Ok(())
    }

    fn accept(&mut self, mv: Move, p: Prediction, heap: &mut BinaryHeap<Candidate>) {
        for &t in &p.stops {
            // Stopping a known live task cannot fail here: `predict` already stopped it on a copy.
            if self.overlay.stop(self.cluster, t).is_ok() {
                self.moved.insert(t);
            }
        }
        for (k, &at) in p.starts.iter().enumerate() {
            let service = match &mv {
                Move::Stop { service, .. } | Move::Redeploy { service } => service.clone(),
                Move::Drain { .. } => self.task_service(p.stops[k]).unwrap_or_default(),
            };
            if let Ok(ctx) = self.service_ctx(&service) {
                let (group, fp) = (ctx.request.group.clone(), ctx.request.footprint.clone());
                self.overlay.start(at, &group, fp);
            }
        }
        for &(i, new) in &p.loads {
            if let Some(old) = self.loads[i] {
                self.stats = self.stats.replace(old, new);
                self.loads[i] = Some(new);
            }
        }
        self.restarted += p.restarted;
        let landing: Vec<String> = p.landing.iter().map(|&i| self.arn(i).to_owned()).collect();
        let action = match &mv {
            Move::Stop { service, source, tasks } => {
                if let Ok(ctx) = self.service_ctx(service) {
                    ctx.planned += 1;
                }
                let task = &self.cluster.tasks()[p.stops[0]];
                let svc = self.cluster.service(service);
                let rest: Vec<usize> = tasks.iter().copied().filter(|t| !self.moved.contains(t)).collect();
                if !rest.is_empty() {
                    heap.push(Candidate {
                        value: self.value(&p),
                        mv: Move::Stop {
                            service: service.clone(),
                            source: *source,
                            tasks: rest,
                        },
                    });
                }
                PlannedAction {
                    kind: "stop-task",
                    task_arn: Some(task.task_arn.clone()),
                    service_name: Some(service.clone()),
                    service_arn: svc.map(|s| s.service_arn.clone()),
                    container_instance_arn: Some(self.arn(*source).to_owned()),
                    reason: format!(
                        "{} is the most loaded; every instance ECS could start the replacement on lowers the score",
                        self.instance_name(*source)
                    ),
                    predicted_landing: landing,
                    tasks_restarted: p.restarted,
                    score_after: self.stats.score(),
                }
            }
            Move::Redeploy { service } => {
                if let Ok(ctx) = self.service_ctx(service) {
                    ctx.redeploy_planned = true;
                }
                let svc = self.cluster.service(service);
                PlannedAction {
                    kind: "redeploy-service",
                    task_arn: None,
                    service_name: Some(service.clone()),
                    service_arn: svc.map(|s| s.service_arn.clone()),
                    container_instance_arn: None,
                    reason: format!(
                        "stopping a task would take it below its healthy floor; a new deployment starts each \
                         replacement before stopping the old task (maximumPercent {}%)",
                        svc.map_or(0, crate::model::Service::maximum_percent)
                    ),
                    predicted_landing: landing,
                    tasks_restarted: p.restarted,
                    score_after: self.stats.score(),
                }
            }
            Move::Drain { instance } => {
                self.drained.insert(*instance);
                self.drains_planned += 1;
                // Every task the drain moves counts against its service's floor and per-service budget.
                for &t in &p.stops {
                    if let Some(service) = self.task_service(t) {
                        if let Ok(ctx) = self.service_ctx(&service) {
                            ctx.planned += 1;
                        }
                    }
                }
                self.overlay.exclude(*instance, "planned to be drained");
                PlannedAction {
                    kind: "drain-instance",
                    task_arn: None,
                    service_name: None,
                    service_arn: None,
                    container_instance_arn: Some(self.arn(*instance).to_owned()),
                    reason: format!(
                        "{} carries more than its share; ECS moves its service tasks within each service's minimum \
                         and maximum percent, and the controller sets it ACTIVE again once they are gone",
                        self.instance_name(*instance)
                    ),
                    predicted_landing: landing,
                    tasks_restarted: p.restarted,
                    score_after: self.stats.score(),
                }
            }
        };
        self.actions.push(action);
    }

    fn instance_name(&self, i: usize) -> String {
        let inst = &self.cluster.instances()[i];
        inst.ec2_instance_id
            .clone()
            .unwrap_or_else(|| inst.container_instance_arn.clone())
    }

    fn service_arn(&self, name: &str) -> String {
        self.cluster
            .service(name)
            .map_or(name.to_owned(), |s| s.service_arn.clone())
    }

    fn task_service(&self, t: usize) -> Option<String> {
        self.cluster.tasks()[t].service_name().map(str::to_owned)
    }

    fn first_task_arn(&self, mv: &Move) -> String {
        match mv {
            Move::Stop { tasks, .. } => tasks
                .iter()
                .find(|t| !self.moved.contains(t))
                .map_or(String::new(), |&t| self.cluster.tasks()[t].task_arn.clone()),
            _ => self.target_of(mv),
        }
    }

    fn target_of(&self, mv: &Move) -> String {
        match mv {
            Move::Stop { .. } => self.first_task_arn(mv),
            Move::Redeploy { service } => self.service_arn(service),
            Move::Drain { instance } => self.arn(*instance).to_owned(),
        }
    }

    /// The tasks on a source that a stop could move, grouped by service; the rest are recorded as skipped.
    fn movable_tasks(&mut self, source: usize) -> Vec<(String, Vec<usize>)> {
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let ids: Vec<usize> = self.cluster.task_indexes_on(source).to_vec();
        for t in ids {
            let task = &self.cluster.tasks()[t];
            if task.desired_status == TaskStatus::Stopped || self.moved.contains(&t) {
                continue;
            }
            let Some(service) = task.service_name() else {
                self.skip(&task.task_arn.clone(), &SkipReason::Standalone);
                continue;
            };
            let service = service.to_owned();
            let task_arn = task.task_arn.clone();
            if self.is_protected(task) {
                self.skip(&task_arn, &SkipReason::Protected);
                continue;
            }
            if self.ledger.task_in_flight(&task_arn) {
                self.skip(&task_arn, &SkipReason::InFlight);
                continue;
            }
            if self.ledger.task_attempted(&task_arn) {
                self.skip(&task_arn, &SkipReason::Attempted);
                continue;
            }
            if self.service_ctx(&service).is_err() {
                continue;
            }
            match groups.iter_mut().find(|(s, _)| *s == service) {
                Some((_, list)) => list.push(t),
                None => groups.push((service, vec![t])),
            }
        }
        groups
    }

    fn is_protected(&self, task: &Task) -> bool {
        self.cluster
            .snapshot()
            .protected_tasks
            .iter()
            .any(|p| p.task_arn == task.task_arn && p.active_at(self.now))
    }

    /// Predicts a move on the current state, or says why it is refused.
    fn predict(&mut self, mv: &Move) -> Result<Prediction, SkipReason> {
        match mv {
            Move::Stop { service, source, tasks } => self.predict_stop(service, *source, tasks),
            Move::Redeploy { service } => self.predict_redeploy(service),
            Move::Drain { instance } => self.predict_drain(*instance),
        }
    }

    fn predict_stop(&mut self, service: &str, source: usize, tasks: &[usize]) -> Result<Prediction, SkipReason> {
        if !self.policy.allows(ActionKind::StopTasks) {
            return Err(SkipReason::Excluded("the policy does not allow stop-tasks".into()));
        }
        let t = *tasks
            .iter()
            .find(|t| !self.moved.contains(t))
            .ok_or(SkipReason::InFlight)?;
        if self.drained.contains(&source) {
            return Err(SkipReason::InFlight);
        }
        let ctx = self.service_ctx(service)?;
        if ctx.redeploy_planned {
            return Err(SkipReason::InFlight);
        }
        if ctx.running.saturating_sub(ctx.planned) <= ctx.floor {
            return Err(SkipReason::BelowFloor {
                running: ctx.running.saturating_sub(ctx.planned),
                floor: ctx.floor,
            });
        }
        if ctx.planned >= ctx.limit {
            return Err(SkipReason::ServiceBudget { limit: ctx.limit });
        }
        let az_rebalancing = ctx.az_rebalancing;
        let task = &self.cluster.tasks()[t];
        let contribution = self
            .model
            .contribution(self.cluster, source, task)
            .ok_or(SkipReason::UnknownLoad)?;
        let mut overlay = self.overlay.clone();
        overlay
            .stop(self.cluster, t)
            .map_err(|e| SkipReason::Unpredictable(e.0))?;
        let placement = self.index.candidates(&self.ready(service)?.request, &overlay);
        let landing = placement.candidates;
        if landing.is_empty() {
            return Err(SkipReason::NoLanding);
        }
        if landing.contains(&source) {
            return Err(SkipReason::LandsOnSource);
        }
        if az_rebalancing {
            let az = |i: usize| {
                self.cluster.instances()[i]
                    .availability_zone()
                    .unwrap_or("?")
                    .to_owned()
            };
            if let Some(&other) = landing.iter().find(|&&c| az(c) != az(source)) {
                return Err(SkipReason::AzRebalancing {
                    from: az(source),
                    to: az(other),
                });
            }
        }
        let current = self.stats.score();
        let src_old = self.loads[source].ok_or(SkipReason::UnknownLoad)?;
        let src_new = src_old + self.model.delta(source, contribution, -1.0);
        let without = self.stats.replace(src_old, src_new);
        let mut worst: Option<(f64, usize, f64)> = None;
        for &c in &landing {
            let dst_old = self.loads[c].ok_or(SkipReason::UnknownLoad)?;
            let dst_new = dst_old + self.model.delta(c, contribution, 1.0);
            let score = without.replace(dst_old, dst_new).score();
            if score >= current - EPSILON {
                return Err(SkipReason::NoImprovement {
                    via: self.instance_name(c),
                });
            }
            if worst.is_none_or(|(w, _, _)| score > w) {
                worst = Some((score, c, dst_new));
            }
        }
        let (score, worst_landing, dst_new) = worst.ok_or(SkipReason::NoLanding)?;
        Ok(Prediction {
            score,
            landing,
            stops: vec![t],
            starts: vec![worst_landing],
            loads: vec![(source, src_new), (worst_landing, dst_new)],
            restarted: 1,
        })
    }

    /// Places `count` new tasks of a request one after another on a copy of the overlay. Returns the landings and
    /// the union of candidate sets.
    ///
    /// Where a replacement has several candidates, the tasks take them in turn (the first task the first
    /// candidate, the next the second, …): a neutral stand-in for ECS's undocumented tie-break. The worst case,
    /// every independent tie broken onto one instance, is what `predict_stop` assumes for a single task; for the
    /// many tasks of a drain or a redeploy it would make every bulk move look useless, and the bulk moves are
    /// still only accepted when this prediction lowers the score.
    fn place_sequence(
        &self,
        request: &TaskRequest,
        overlay: &mut Overlay,
        state: &mut (Vec<Option<f64>>, Stats),
        contribution: Contribution,
        count: usize,
        turn: usize,
    ) -> Result<(Vec<usize>, Vec<usize>), SkipReason> {
        let (loads, stats) = state;
        let mut starts = Vec::with_capacity(count);
        let mut union: Vec<usize> = Vec::new();
        for k in 0..count {
            let p = self.index.candidates(request, overlay);
            if p.candidates.is_empty() {
                return Err(SkipReason::NoLanding);
            }
            if p.candidates.iter().any(|&c| loads[c].is_none()) {
                return Err(SkipReason::UnknownLoad);
            }
            union.extend_from_slice(&p.candidates);
            let at = p.candidates[(turn + k) % p.candidates.len()];
            let old = loads[at].ok_or(SkipReason::UnknownLoad)?;
            let new = old + self.model.delta(at, contribution, 1.0);
            loads[at] = Some(new);
            *stats = stats.replace(old, new);
            overlay.start(at, &request.group, request.footprint.clone());
            starts.push(at);
        }
        union.sort_unstable();
        union.dedup();
        Ok((starts, union))
    }

    /// Removes a contribution from an instance's load in a predicted state.
    fn remove(&self, state: &mut (Vec<Option<f64>>, Stats), at: usize, c: Contribution) {
        if let Some(old) = state.0[at] {
            let new = old + self.model.delta(at, c, -1.0);
            state.0[at] = Some(new);
            state.1 = state.1.replace(old, new);
        }
    }

    fn predict_redeploy(&mut self, service: &str) -> Result<Prediction, SkipReason> {
        let svc = self.cluster.service(service).ok_or(SkipReason::Inconsistent)?;
        if svc.maximum_percent() <= 100 {
            return Err(SkipReason::RedeployBlocked(format!(
                "maximumPercent {}% cannot start a replacement before stopping a task",
                svc.maximum_percent()
            )));
        }
        if self.ledger.redeploy_in_flight(service) {
            return Err(SkipReason::InFlight);
        }
        let old: Vec<usize> = self
            .cluster
            .tasks_of(service)
            .filter(|t| t.desired_status != TaskStatus::Stopped)
            .filter_map(|t| self.cluster.task_index(&t.task_arn))
            .collect();
        if old.is_empty() || old.iter().any(|t| self.moved.contains(t)) {
            return Err(SkipReason::RedeployBlocked("no steady tasks to replace".into()));
        }
        if old.iter().any(|&t| self.is_protected(&self.cluster.tasks()[t])) {
            return Err(SkipReason::RedeployBlocked(
                "a task is protected, which holds up a deployment".into(),
            ));
        }
        let ctx = self.service_ctx(service)?;
        if ctx.redeploy_planned || ctx.planned > 0 {
            return Err(SkipReason::InFlight);
        }
        // The old tasks' contributions, from their sources; each new task is predicted to add their mean.
        let mut total = 0.0;
        let mut removals = Vec::with_capacity(old.len());
        for &t in &old {
            let task = &self.cluster.tasks()[t];
            let src = task
                .container_instance_arn
                .as_deref()
                .and_then(|a| self.cluster.instance_index(a))
                .ok_or(SkipReason::Inconsistent)?;
            let c = self
                .model
                .contribution(self.cluster, src, task)
                .ok_or(SkipReason::UnknownLoad)?;
            total += c.amount;
            removals.push((src, c));
        }
        #[allow(clippy::cast_precision_loss)] // task counts
        let each = Contribution {
            amount: total / old.len() as f64,
        };
        // Start before stop (maximumPercent > 100): the new tasks are placed while the old still run.
        let mut overlay = self.overlay.clone();
        let mut state = (self.loads.clone(), self.stats);
        let request = &self.ready(service)?.request;
        let (starts, landing) = self.place_sequence(request, &mut overlay, &mut state, each, old.len(), 0)?;
        for (src, c) in removals {
            self.remove(&mut state, src, c);
        }
        let (loads, stats) = state;
        let score = stats.score();
        if score >= self.stats.score() - EPSILON {
            return Err(SkipReason::RedeployBlocked(
                "the re-spread would not lower the score".into(),
            ));
        }
        let changed = changed_loads(&self.loads, &loads);
        Ok(Prediction {
            score,
            landing,
            stops: old.clone(),
            starts,
            loads: changed,
            restarted: u32::try_from(old.len()).unwrap_or(u32::MAX),
        })
    }

    fn predict_drain(&mut self, instance: usize) -> Result<Prediction, SkipReason> {
        let arn = self.arn(instance).to_owned();
        if self.drained.contains(&instance) || self.ledger.drain_in_flight(&arn) {
            return Err(SkipReason::InFlight);
        }
        if let Some(until) = self.ledger.instance_cooling_until(&arn, self.now) {
            return Err(SkipReason::InstanceCoolingDown(until));
        }
        let limit = self.policy.budgets.concurrent_drains;
        if self.ledger.drains_in_flight() + self.drains_planned >= limit {
            return Err(SkipReason::ConcurrentDrains { limit });
        }
        let mut moves: Vec<(usize, String)> = Vec::new();
        // Ordered, so the first service over its budget (and the reason given) is the same on every run.
        let mut per_service: BTreeMap<String, u32> = BTreeMap::new();
        for &t in self.cluster.task_indexes_on(instance) {
            let task = &self.cluster.tasks()[t];
            if task.desired_status == TaskStatus::Stopped {
                continue;
            }
            if self.moved.contains(&t) {
                return Err(SkipReason::InFlight);
            }
            let Some(service) = task.service_name() else {
                return Err(SkipReason::DrainBlocked(format!(
                    "standalone task {} would keep the instance DRAINING",
                    task.task_arn
                )));
            };
            let svc = self.cluster.service(service).ok_or(SkipReason::Inconsistent)?;
            if svc.scheduling_strategy == crate::model::SchedulingStrategy::Daemon {
                continue; // stopped by the drain, started again when the instance is ACTIVE
            }
            if svc.minimum_healthy_percent() >= 100 && svc.maximum_percent() <= 100 {
                return Err(SkipReason::DrainBlocked(format!(
                    "service {service} has minimumHealthyPercent 100 and maximumPercent 100; the drain could never \
                     finish"
                )));
            }
            if self.is_protected(task) {
                return Err(SkipReason::DrainBlocked(format!("task {} is protected", task.task_arn)));
            }
            if let Err(reason) = self.service_ctx(service) {
                return Err(SkipReason::DrainBlocked(format!("service {service}: {reason}")));
            }
            *per_service.entry(service.to_owned()).or_default() += 1;
            moves.push((t, service.to_owned()));
        }
        if moves.is_empty() {
            return Err(SkipReason::DrainBlocked("no service tasks to move".into()));
        }
        for (service, n) in &per_service {
            let ctx = self.service_ctx(service)?;
            if ctx.planned + n > ctx.limit {
                return Err(SkipReason::DrainBlocked(format!(
                    "service {service} has {n} task(s) here, more than budgets.perService allows at once ({})",
                    ctx.limit
                )));
            }
        }
        let mut overlay = self.overlay.clone();
        overlay.exclude(instance, "being drained");
        let mut state = (self.loads.clone(), self.stats);
        let mut starts = Vec::new();
        let mut landing: Vec<usize> = Vec::new();
        for (turn, (t, service)) in moves.iter().enumerate() {
            let task = &self.cluster.tasks()[*t];
            let c = self
                .model
                .contribution(self.cluster, instance, task)
                .ok_or(SkipReason::UnknownLoad)?;
            overlay
                .stop(self.cluster, *t)
                .map_err(|e| SkipReason::Unpredictable(e.0))?;
            self.remove(&mut state, instance, c);
            let request = &self.ready(service)?.request;
            let (s, u) = self.place_sequence(request, &mut overlay, &mut state, c, 1, turn)?;
            starts.extend(s);
            landing.extend(u);
        }
        landing.sort_unstable();
        landing.dedup();
        // After the drain the instance is set ACTIVE again with what is left (daemons), and counts in the score.
        let (loads, stats) = state;
        let score = stats.score();
        if score >= self.stats.score() - EPSILON {
            return Err(SkipReason::NoImprovement {
                via: "the emptied instance".into(),
            });
        }
        let changed = changed_loads(&self.loads, &loads);
        Ok(Prediction {
            score,
            landing,
            stops: moves.iter().map(|(t, _)| *t).collect(),
            starts,
            loads: changed,
            restarted: u32::try_from(moves.len()).unwrap_or(u32::MAX),
        })
    }
}

fn changed_loads(before: &[Option<f64>], after: &[Option<f64>]) -> Vec<(usize, f64)> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter_map(|(i, (b, a))| match (b, a) {
            (Some(b), Some(a)) if (a - b).abs() > 0.0 => Some((i, *a)),
            _ => None,
        })
        .collect()
}

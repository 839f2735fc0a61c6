//! The greedy choice among candidate moves, shared by the planner ([`Luck::Odds`]) and the reachable-balance
//! reference ([`Luck::Lucky`]).
//!
//! Every move is predicted on the state left by the moves chosen before it ([`State`]). A move is valued by its
//! expected score drop per restarted task; the planner accepts it when that value is positive, no instance ECS
//! could pick is busier than the one a task leaves (so even the unluckiest landing only shifts load sideways), no
//! floor or constraint can break, and the budgets have room.
//!
//! Order of work, cheapest first: instances above the mean load are stop sources, hottest first; all tasks of one
//! service on one source are equivalent, so each (service, source) pair is predicted once, and at most
//! [`MAX_PREDICTIONS`] stop predictions are made per cycle. Redeploy and drain candidates are fewer and dearer
//! ([`MAX_BULK_PREDICTIONS`] each). Candidates go into a max-heap by value and are re-predicted when popped (lazy
//! greedy): a move is accepted only if its fresh value is still at least the next candidate's last one.
//!
//! The move kinds live in their own files: [`super::stop`], [`super::redeploy`], [`super::drain`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::model::{Cluster, InstanceIdx, Task, TaskIdx};
use crate::placement::{Overlay, TaskRequest};
use crate::policy::{ActionKind, Policy};

use super::budget::{self, Cost};
use super::load::{LoadAt, LoadModel, Stats};
use super::safety::{self, Skip, SkipReason};
use super::state::{Luck, State, EPSILON};
use super::view::LedgerView;

/// Stop predictions per cycle, at most (each is one placement query).
pub const MAX_PREDICTIONS: usize = 4096;
/// Redeploy and drain predictions per cycle, at most each (each is many placement queries).
pub const MAX_BULK_PREDICTIONS: usize = 32;

/// Per-service facts a cycle needs, computed once.
pub struct ServiceCtx {
    pub request: TaskRequest,
    pub floor: u32,
    /// Tasks running, less the stops of ours in flight.
    pub running: u32,
    pub az_rebalancing: bool,
    /// Stops planned this cycle.
    pub planned: u32,
    pub redeploy_planned: bool,
    /// A drain planned this cycle replaces some of its tasks: ECS may take it down to its floor, so no stop.
    pub drain_planned: bool,
}

/// A candidate move.
#[derive(Debug, Clone)]
pub enum Move {
    /// Stop one of `tasks` (all of one service on one source; the first not yet moved).
    Stop {
        service: String,
        source: InstanceIdx,
        tasks: Vec<TaskIdx>,
    },
    /// Force a new deployment of the service.
    Redeploy { service: String },
    /// Drain the instance until its movable tasks have moved, then set it ACTIVE again.
    Drain { instance: InstanceIdx },
}

impl Move {
    pub fn kind(&self) -> ActionKind {
        match self {
            Move::Stop { .. } => ActionKind::StopTasks,
            Move::Redeploy { .. } => ActionKind::RedeployServices,
            Move::Drain { .. } => ActionKind::DrainInstances,
        }
    }
}

/// A task a move stops, and the instance its replacement is recorded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relocation {
    pub task: TaskIdx,
    /// The pick the state records: the busiest tied instance under odds, the best one for the reference.
    pub to: InstanceIdx,
}

/// A move predicted on the current state.
pub struct Prediction {
    /// The overlay with the move applied.
    pub overlay: Overlay,
    /// The tasks the move stops and replaces, each with where its replacement is recorded (daemon tasks a drain
    /// restarts are not among them).
    pub relocations: Vec<Relocation>,
    /// Instance loads the move changes in the outcome the state records (the unluckiest under odds).
    pub loads: Vec<LoadAt>,
    /// The statistics of that outcome.
    pub stats: Stats,
    /// The expected score after the move (ties as fair draws; the lucky outcome for the reference).
    pub score: f64,
    /// The score the move is judged by (a drain's settled state; otherwise `score`).
    pub judged: f64,
    /// Restarts the value is divided by (a drain adds the restarts that will refill the instance).
    pub charged: u32,
    pub cost: Cost,
    /// Every instance ECS could put a replacement on.
    pub landing: Vec<InstanceIdx>,
    /// Of those, the ones on which the move lowers the score (a stop only; empty otherwise).
    pub improving: Vec<InstanceIdx>,
}

impl Prediction {
    /// Score drop per charged restart, against the score before the move.
    pub fn value(&self, before: f64) -> f64 {
        (before - self.judged) / f64::from(self.charged.max(1))
    }
}

pub struct Candidate {
    /// Value as last predicted.
    value: f64,
    /// Cost as last predicted: budgets only tighten during a cycle, so a move they refused at this cost is
    /// refused without predicting it again.
    cost: Cost,
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

/// A move the search accepted, with its prediction.
pub struct Accepted {
    pub mv: Move,
    pub prediction: Prediction,
    /// The score before it (in the recorded state).
    pub before: f64,
    /// The expected score after it and every move accepted before it.
    pub expected_after: f64,
    /// For a stop, the task stopped.
    pub task: Option<TaskIdx>,
}

/// One search over one state.
pub struct Search<'c> {
    pub state: State<'c>,
    pub ledger: &'c LedgerView,
    pub now: DateTime<Utc>,
    pub services: HashMap<String, Result<ServiceCtx, SkipReason>>,
    pub budget: budget::Ledger,
    /// Services whose stop was refused for their floor: a start-before-stop redeploy may still move them, hottest
    /// source first.
    pub redeploy_wanted: Vec<String>,
    /// Services whose redeploy is worth more than the run of stops that would move them (see
    /// `redeploy_beats_stops`): their stops are left for the redeploy this cycle.
    pub redeploy_preferred: HashSet<String>,
    /// Whether a service whose stops get stuck short of its redeploy is left to the redeploy even though the stops
    /// are worth more per restart (`redeploy_beats_stops`); and whether that rule decided anything this search.
    pub further: bool,
    pub went_further: bool,
    pub accepted: Vec<Accepted>,
    /// The expected score after the moves accepted so far (the state records their unluckiest outcome instead).
    pub expected: f64,
    pub skipped: Vec<Skip>,
    skipped_targets: HashSet<(String, &'static str)>,
}

impl<'c> Search<'c> {
    pub fn new(
        cluster: &'c Cluster,
        policy: &'c Policy,
        ledger: &'c LedgerView,
        now: DateTime<Utc>,
        luck: Luck,
    ) -> Search<'c> {
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
        let state = State::new(cluster, policy, model, luck);
        Search {
            expected: state.score(),
            state,
            ledger,
            now,
            services: HashMap::new(),
            budget: budget::Ledger::new(policy.budgets, cluster, ledger, now),
            redeploy_wanted: Vec::new(),
            redeploy_preferred: HashSet::new(),
            // The reference's stops draw luckily: it judges stops and redeploys by their value alone.
            further: luck == Luck::Odds,
            went_further: false,
            accepted: Vec::new(),
            skipped,
            skipped_targets: HashSet::new(),
        }
    }

    pub fn cluster(&self) -> &'c Cluster {
        self.state.cluster
    }

    pub fn policy(&self) -> &'c Policy {
        self.state.policy
    }

    pub fn skip(&mut self, target: &str, reason: &SkipReason) {
        // One entry per target and kind of reason: a plan lists what was refused, not every retry.
        if self.skipped_targets.insert((target.to_owned(), reason.label())) {
            self.skipped.push(Skip {
                target: target.to_owned(),
                reason: reason.to_string(),
                label: reason.label(),
            });
        }
    }

    /// The service's per-cycle facts, computed on first use; a refusal is recorded once.
    pub fn service_ctx(&mut self, name: &str) -> Result<&mut ServiceCtx, SkipReason> {
        if !self.services.contains_key(name) {
            let ctx = self.build_ctx(name);
            if let Err(reason) = &ctx {
                let target = self.service_arn(name);
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

    /// The context of a service `service_ctx` has already accepted (shared borrow, for use beside the state).
    pub fn ready(&self, name: &str) -> Result<&ServiceCtx, SkipReason> {
        match self.services.get(name) {
            Some(Ok(ctx)) => Ok(ctx),
            Some(Err(e)) => Err(e.clone()),
            None => Err(SkipReason::Inconsistent),
        }
    }

    fn build_ctx(&self, name: &str) -> Result<ServiceCtx, SkipReason> {
        let cluster = self.cluster();
        let service = cluster.service(name).ok_or(SkipReason::Inconsistent)?;
        safety::check_service(cluster, service, self.policy(), self.ledger, self.now)?;
        let request = self
            .state
            .index()
            .request_for_service(service)
            .map_err(|e| SkipReason::Unpredictable(e.0))?;
        let in_flight = self.ledger.stops_in_flight(name);
        Ok(ServiceCtx {
            request,
            floor: safety::floor(service),
            running: service.running_count.saturating_sub(in_flight),
            az_rebalancing: service.availability_zone_rebalancing.as_deref() == Some("ENABLED"),
            planned: 0,
            redeploy_planned: false,
            drain_planned: false,
        })
    }

    pub fn service_arn(&self, name: &str) -> String {
        self.cluster()
            .service(name)
            .map_or(name.to_owned(), |s| s.service_arn.clone())
    }

    pub fn is_protected(&self, task: &Task) -> bool {
        self.cluster()
            .snapshot()
            .protected_tasks
            .iter()
            .any(|p| p.task_arn == task.task_arn && p.active_at(self.now))
    }

    /// Predicts a move on the current state, or says why it is refused.
    pub fn predict(&mut self, mv: &Move) -> Result<Prediction, SkipReason> {
        if !self.policy().allows(mv.kind()) {
            return Err(SkipReason::Excluded(format!("the policy does not allow {}", mv.kind())));
        }
        match mv {
            Move::Stop { service, source, tasks } => self.predict_stop(service, *source, tasks),
            Move::Redeploy { service } => self.predict_redeploy(service),
            Move::Drain { instance } => self.predict_drain(*instance),
        }
    }

    pub fn target_of(&self, mv: &Move) -> String {
        match mv {
            Move::Stop { tasks, .. } => tasks
                .iter()
                .find(|t| !self.state.moved.contains(t))
                .or(tasks.first())
                .map_or(String::new(), |&t| self.cluster().task_at(t).task_arn.clone()),
            Move::Redeploy { service } => self.service_arn(service),
            Move::Drain { instance } => self.state.arn(*instance).to_owned(),
        }
    }

    /// Predicts a move and queues it by value, or records why it is refused.
    pub fn enqueue(&mut self, heap: &mut BinaryHeap<Candidate>, mv: Move) {
        match self.predict(&mv) {
            Ok(p) => heap.push(Candidate {
                value: p.value(self.state.score()),
                cost: p.cost,
                mv,
            }),
            Err(reason) => {
                if matches!(reason, SkipReason::BelowFloor { .. }) {
                    if let Move::Stop { service, .. } = &mv {
                        if !self.redeploy_wanted.contains(service) {
                            self.redeploy_wanted.push(service.clone());
                        }
                    }
                }
                let target = self.target_of(&mv);
                self.skip(&target, &reason);
            }
        }
    }

    /// Chooses moves greedily by value until the score is at or below `stop_at`, or after `max_moves`: stops,
    /// redeploys and drains compete on one measure, the expected score drop per restarted task.
    pub fn run(&mut self, stop_at: f64, max_moves: usize) {
        // A spent hourly budget refuses every candidate: say so once rather than predict thousands to refuse each.
        if let Some(limit) = self.budget.hour_spent() {
            let cluster = self.cluster().name().to_owned();
            self.skip(&cluster, &SkipReason::HourBudget { limit });
            return;
        }
        let mut heap = BinaryHeap::new();
        self.seed_stops(&mut heap);
        self.seed_redeploys(&mut heap);
        self.seed_drains(&mut heap);
        self.choose(&mut heap, stop_at, max_moves);
    }

    /// Lazy greedy: re-predict the best candidate on the current state; accept it if it still beats the next.
    /// Stops when the score is at or below `stop_at`, or after `max_moves`.
    fn choose(&mut self, heap: &mut BinaryHeap<Candidate>, stop_at: f64, max_moves: usize) {
        while let Some(candidate) = heap.pop() {
            if self.expected <= stop_at || self.accepted.len() >= max_moves {
                break;
            }
            if let Err(reason) = self.budget.admit(self.cluster(), &candidate.cost) {
                let target = self.target_of(&candidate.mv);
                self.skip(&target, &reason);
                continue;
            }
            let prediction = match self.predict(&candidate.mv) {
                Ok(p) => p,
                Err(reason) => {
                    let target = self.target_of(&candidate.mv);
                    self.skip(&target, &reason);
                    continue;
                }
            };
            let value = prediction.value(self.state.score());
            if value <= EPSILON {
                let target = self.target_of(&candidate.mv);
                self.skip(&target, &SkipReason::NoGain);
                continue;
            }
            if heap.peek().is_some_and(|next| value + EPSILON < next.value) {
                heap.push(Candidate {
                    value,
                    cost: prediction.cost,
                    mv: candidate.mv,
                });
                continue;
            }
            if let Err(reason) = self.budget.admit(self.cluster(), &prediction.cost) {
                let target = self.target_of(&candidate.mv);
                self.skip(&target, &reason);
                continue;
            }
            self.accept(candidate.mv, prediction, heap);
        }
    }

    fn accept(&mut self, mv: Move, mut p: Prediction, heap: &mut BinaryHeap<Candidate>) {
        let before = self.state.score();
        if let (Move::Stop { source, .. }, Some(first)) = (&mv, p.relocations.first()) {
            p.improving = self.improving(*source, first.task, &p.landing);
        }
        self.expected -= before - p.score;
        self.state.overlay = p.overlay.clone();
        for r in &p.relocations {
            self.state.moved.insert(r.task);
        }
        self.state.apply(&p.loads, p.stats);
        self.budget.spend(self.state.cluster, &p.cost);
        let mut task = None;
        match &mv {
            Move::Stop { service, source, tasks } => {
                if let Ok(ctx) = self.service_ctx(service) {
                    ctx.planned += 1;
                }
                task = p.relocations.first().map(|r| r.task);
                let rest: Vec<TaskIdx> = tasks
                    .iter()
                    .copied()
                    .filter(|t| !self.state.moved.contains(t))
                    .collect();
                if !rest.is_empty() {
                    heap.push(Candidate {
                        value: p.value(before),
                        cost: p.cost.clone(),
                        mv: Move::Stop {
                            service: service.clone(),
                            source: *source,
                            tasks: rest,
                        },
                    });
                }
            }
            Move::Redeploy { service } => {
                if let Ok(ctx) = self.service_ctx(service) {
                    ctx.redeploy_planned = true;
                }
            }
            Move::Drain { instance } => {
                let services: Vec<String> = p
                    .relocations
                    .iter()
                    .filter_map(|r| self.cluster().task_at(r.task).service_name().map(str::to_owned))
                    .collect();
                for service in services {
                    if let Ok(ctx) = self.service_ctx(&service) {
                        ctx.drain_planned = true;
                    }
                }
                self.state.drained.insert(*instance);
                self.state.overlay.exclude(*instance, "planned to be drained");
            }
        }
        self.accepted.push(Accepted {
            mv,
            prediction: p,
            before,
            expected_after: self.expected,
            task,
        });
    }

    /// The most-refused labels, for a summary.
    pub fn top_refusals(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for skip in &self.skipped {
            *counts.entry(skip.label).or_default() += 1;
        }
        let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        top.iter()
            .take(3)
            .map(|(l, n)| format!("{l} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

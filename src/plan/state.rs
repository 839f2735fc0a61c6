//! The planner's picture of the cluster as moves are added to a plan: placements in an [`Overlay`] (never a copy of
//! the cluster), loads as numbers. Shared by the planner and the reachable-balance reference; they differ only in
//! how a tie among equally good instances is read ([`Luck`]).
//!
//! ECS does not document how it breaks a tie among the instances its strategy leaves equal (`docs/ecs.md`, ties), so
//! the planner reads each placement as a uniform draw over the tied set: loads become expectations (each tied
//! instance receives its share of the task; a move's own score also counts the spread of its draws, so it is an
//! expectation too), and the overlay records the busiest tied instance, so later placements in the
//! same cycle are predicted on the pessimistic side. Each move is also held to its unluckiest outcome (every draw on
//! the busiest tied instance, [`Delta::worst_ok`]). The reference reads every tie luckily: the tied instance that
//! lowers the score most.

use std::cell::RefCell;
use std::collections::HashSet;

use crate::model::{Cluster, InstanceIdx, TaskIdx};
use crate::placement::{Overlay, PlacementIndex, TaskRequest};
use crate::policy::Policy;

use super::load::{hottest_first, Contribution, LoadAt, LoadModel, Stats};
use super::safety::SkipReason;

/// Below this, a score or load change is noise.
pub const EPSILON: f64 = 1e-9;

/// How a tie among equally good instances is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Luck {
    /// A uniform draw (the planner): loads in expectation, the overlay on the busiest tied instance.
    Odds,
    /// The best tied instance for the score (the reachable-balance reference).
    Lucky,
}

/// The state a plan is built on.
pub struct State<'c> {
    pub cluster: &'c Cluster,
    pub policy: &'c Policy,
    pub model: LoadModel,
    /// Built on first use: a cycle that finds the cluster balanced predicts nothing and never needs it.
    index: std::cell::OnceCell<PlacementIndex<'c>>,
    pub overlay: Overlay,
    /// Per instance position: the load (an expectation under [`Luck::Odds`]), `None` when unknown or not scored.
    /// Read one with [`State::load`].
    pub loads: Vec<Option<f64>>,
    pub stats: Stats,
    /// Tasks a planned move stops.
    pub moved: HashSet<TaskIdx>,
    /// Instances a planned move drains.
    pub drained: HashSet<InstanceIdx>,
    pub luck: Luck,
    /// Record each draw on its most likely good outcome (the least loaded tied instance) rather than the busiest:
    /// for playing a run of moves out to value it, where the busiest would keep the source in the tied set.
    pub typical: bool,
    /// Cleared layers for the next what-ifs: a cycle makes thousands, each as wide as the cluster.
    spare: RefCell<Vec<Layer>>,
}

impl<'c> State<'c> {
    /// The state of `cluster` as it is. `model` says which instances are scored.
    pub fn new(cluster: &'c Cluster, policy: &'c Policy, model: LoadModel, luck: Luck) -> State<'c> {
        // Only scored instances with a known load may receive tasks: anything else is not ours to fill, or its
        // effect on the score is unknown.
        let mut overlay = Overlay::new();
        for (i, inst) in cluster.instance_indexes().zip(cluster.instances()) {
            if inst.can_take_tasks() && model.load_at(i).is_none() {
                overlay.exclude(
                    i,
                    if model.is_scored(i) {
                        "its load is unknown"
                    } else {
                        "not balanced by this policy"
                    },
                );
            }
        }
        let loads = model.load.clone();
        let stats = Stats::of(&loads);
        State {
            cluster,
            policy,
            model,
            index: std::cell::OnceCell::new(),
            overlay,
            loads,
            stats,
            moved: HashSet::new(),
            drained: HashSet::new(),
            luck,
            typical: false,
            spare: RefCell::new(Vec::new()),
        }
    }

    pub fn score(&self) -> f64 {
        self.stats.score()
    }

    /// The placement index of the cluster as observed.
    pub fn index(&self) -> &PlacementIndex<'c> {
        self.index.get_or_init(|| PlacementIndex::new(self.cluster))
    }

    /// The instance's load (an expectation under [`Luck::Odds`]), `None` when unknown or not scored.
    pub fn load(&self, instance: InstanceIdx) -> Option<f64> {
        self.loads[instance.get()]
    }

    /// The instances above the mean load, hottest first (ties by position): where stops and drains start.
    pub fn above_mean(&self) -> Vec<LoadAt> {
        let mean = self.mean();
        let mut hot: Vec<LoadAt> = self
            .cluster
            .instance_indexes()
            .filter_map(|instance| {
                self.load(instance)
                    .filter(|l| *l > mean + EPSILON)
                    .map(|load| LoadAt { instance, load })
            })
            .collect();
        hottest_first(&mut hot);
        hot
    }

    pub fn mean(&self) -> f64 {
        if self.stats.n > 0.0 {
            self.stats.sum / self.stats.n
        } else {
            0.0
        }
    }

    /// A what-if on top of this state.
    pub fn delta(&self) -> Delta<'_> {
        let layer = || {
            self.spare
                .borrow_mut()
                .pop()
                .unwrap_or_else(|| Layer::new(self.loads.len()))
        };
        Delta {
            base: &self.loads,
            spare: &self.spare,
            before: self.stats,
            changed: layer(),
            worst: layer(),
            stats: self.stats,
            worst_stats: self.stats,
            lateral_stats: self.stats,
            noise: 0.0,
            offender: None,
        }
    }

    /// The load of instance `i` in the what-if's unluckiest outcome so far: what a task leaving it leaves behind.
    pub fn load_of(&self, delta: &Delta<'_>, i: InstanceIdx) -> Option<f64> {
        delta.worst_load(i)
    }

    /// Takes a task's contribution off instance `at` in a what-if.
    pub fn remove(&self, delta: &mut Delta<'_>, at: InstanceIdx, c: Contribution) {
        let step = self.model.delta(at, c, -1.0);
        if let Some(old) = delta.get(at) {
            delta.stats = delta.stats.replace(old, old + step);
            delta.changed.set(at, old + step);
        }
        if let Some(old) = delta.worst_load(at) {
            delta.worst_stats = delta.worst_stats.replace(old, old + step);
            delta.lateral_stats = delta.lateral_stats.replace(old, old + step);
            delta.worst.set(at, old + step);
        }
    }

    /// Places one new task of `request` in a what-if: the tied candidates ECS could pick, and the one the overlay
    /// records. `source` is the load of the instance the task leaves, as it was right before the task left it.
    ///
    /// Under [`Luck::Odds`] the expected loads take a share of the task on every tied instance (and the expected
    /// sum of squares the spread of that draw); the unluckiest outcome puts it on the busiest tied instance, which
    /// the overlay records; and the lateral outcome puts it on an instance exactly as loaded as its source, the
    /// yardstick [`Delta::worst_ok`] holds the unluckiest outcome to. Under [`Luck::Lucky`] it lands on the tied
    /// instance that lowers the score most.
    pub fn place(
        &self,
        request: &TaskRequest,
        overlay: &mut Overlay,
        delta: &mut Delta<'_>,
        c: Contribution,
        source: Option<f64>,
    ) -> Result<Landed, SkipReason> {
        let ties = self.index().candidates(request, overlay).candidates;
        if ties.is_empty() {
            return Err(SkipReason::NoLanding);
        }
        let pick = match self.luck {
            Luck::Odds => {
                #[allow(clippy::cast_precision_loss)] // tie sets are small
                let share = 1.0 / ties.len() as f64;
                // One pass over the tied instances: their expected loads, the spread of the draw, and the busiest
                // of them in the unluckiest outcome (the first of them).
                let mut busiest: Option<(InstanceIdx, f64)> = None;
                let mut lightest: Option<(InstanceIdx, f64)> = None;
                for &t in &ties {
                    let load = delta.get(t).ok_or(SkipReason::UnknownLoad)?;
                    let worst = delta.worst_load(t).ok_or(SkipReason::UnknownLoad)?;
                    let step = self.model.delta(t, c, 1.0);
                    delta.stats = delta.stats.replace(load, load + step * share);
                    delta.changed.set(t, load + step * share);
                    // The loads are expectations; the move's score must be one too. A draw that puts `step` on a
                    // tied instance with probability `share` adds `step² · share · (1 − share)` to the expected sum
                    // of squares beyond the squares of the expected loads (each placement taken as independent).
                    delta.noise += step * step * share * (1.0 - share);
                    if busiest.is_none_or(|(_, w)| worst > w + EPSILON) {
                        busiest = Some((t, worst));
                    }
                    if lightest.is_none_or(|(_, l)| load < l - EPSILON) {
                        lightest = Some((t, load));
                    }
                }
                let (pick, worst) = busiest.ok_or(SkipReason::NoLanding)?;
                let record = if self.typical {
                    lightest.map_or(pick, |(t, _)| t)
                } else {
                    pick
                };
                let step = self.model.delta(pick, c, 1.0);
                delta.worst_stats = delta.worst_stats.replace(worst, worst + step);
                delta.worst.set(pick, worst + step);
                let lateral = source.unwrap_or(worst);
                delta.lateral_stats = delta.lateral_stats.replace(lateral, lateral + step);
                if worst > lateral + EPSILON && delta.offender.is_none_or(|(_, by)| worst - lateral > by) {
                    delta.offender = Some((pick, worst - lateral));
                }
                record
            }
            Luck::Lucky => {
                let mut best: Option<(f64, InstanceIdx, f64)> = None;
                for &t in &ties {
                    let load = delta.get(t).ok_or(SkipReason::UnknownLoad)?;
                    let new = load + self.model.delta(t, c, 1.0);
                    let after = delta.stats.replace(load, new).score();
                    if best.is_none_or(|(s, ..)| after < s - EPSILON) {
                        best = Some((after, t, load));
                    }
                }
                let (_, t, load) = best.ok_or(SkipReason::NoLanding)?;
                let new = load + self.model.delta(t, c, 1.0);
                delta.stats = delta.stats.replace(load, new);
                delta.changed.set(t, new);
                delta.worst_stats = delta.stats;
                delta.lateral_stats = delta.stats;
                delta.worst.set(t, new);
                t
            }
        };
        overlay.start(pick, &request.group, request.footprint.clone());
        Ok(Landed { ties, pick })
    }

    /// How a person names an instance: its EC2 id, else its ARN.
    pub fn instance_name(&self, i: InstanceIdx) -> String {
        let inst = self.cluster.instance_at(i);
        inst.ec2_instance_id
            .clone()
            .unwrap_or_else(|| inst.container_instance_arn.clone())
    }

    /// For a service with ECS's AZ rebalancing on: that a task leaving `source` can only land in its zone (under
    /// odds, every tied instance; lucky, the pick), so ECS's rebalancing has nothing to undo (`docs/ecs.md`).
    pub fn keeps_zone(&self, source: InstanceIdx, landed: &Landed) -> Result<(), SkipReason> {
        let az = |i: InstanceIdx| {
            self.cluster
                .instance_at(i)
                .availability_zone()
                .unwrap_or("?")
                .to_owned()
        };
        let other = match self.luck {
            Luck::Odds => landed.ties.iter().find(|&&c| az(c) != az(source)).copied(),
            Luck::Lucky => Some(landed.pick).filter(|&c| az(c) != az(source)),
        };
        match other {
            Some(other) => Err(SkipReason::AzRebalancing {
                from: az(source),
                to: az(other),
            }),
            None => Ok(()),
        }
    }

    /// [`Delta::worst_ok`] as a refusal naming the busiest landing (`hotter-landing`).
    pub fn no_hotter_landing(&self, delta: &Delta<'_>) -> Result<(), SkipReason> {
        delta.worst_ok().map_err(|i| SkipReason::HotterLanding {
            via: self.instance_name(i),
        })
    }

    pub fn arn(&self, i: InstanceIdx) -> &'c str {
        &self.cluster.instance_at(i).container_instance_arn
    }

    /// Applies an accepted move's recorded outcome: its load changes and the statistics after it.
    pub fn apply(&mut self, loads: &[LoadAt], stats: Stats) {
        for l in loads {
            let at = &mut self.loads[l.instance.get()];
            if at.is_some() {
                *at = Some(l.load);
            }
        }
        self.stats = stats;
    }
}

/// Where one new task goes.
#[derive(Debug, Clone)]
pub struct Landed {
    /// Every instance ECS could pick.
    pub ties: Vec<InstanceIdx>,
    /// The one the state records.
    pub pick: InstanceIdx,
}

/// Load changes on top of a [`State`], without copying its loads: the expected outcome of a move, its unluckiest
/// outcome, and the lateral yardstick for the latter.
pub struct Delta<'s> {
    base: &'s [Option<f64>],
    /// Where the layers go back when the what-if is dropped.
    spare: &'s RefCell<Vec<Layer>>,
    before: Stats,
    /// Expected loads the move changes.
    changed: Layer,
    /// Loads in the unluckiest outcome (every draw on the busiest tied instance; removals as they are).
    worst: Layer,
    /// Expected: the expected loads, and the spread of the draws in the sum of squares.
    pub stats: Stats,
    worst_stats: Stats,
    /// The unluckiest outcome as it would be if every task landed on an instance exactly as loaded as its source.
    lateral_stats: Stats,
    /// The spread of the move's draws: what they add to the expected sum of squares beyond the squares of the
    /// expected loads.
    noise: f64,
    /// The landing furthest above its source in the unluckiest outcome, and by how much.
    offender: Option<(InstanceIdx, f64)>,
}

impl Delta<'_> {
    /// The expected load of instance `i`.
    pub fn get(&self, i: InstanceIdx) -> Option<f64> {
        self.changed.get(i).or(self.base[i.get()])
    }

    fn worst_load(&self, i: InstanceIdx) -> Option<f64> {
        self.worst.get(i).or(self.base[i.get()])
    }

    /// Whether even the unluckiest outcome only shifts load sideways: its score is no higher than that of the same
    /// move with every task landing on an instance exactly as loaded as the one it left (nor than the score before
    /// the move). Otherwise the busiest landing, for the refusal.
    pub fn worst_ok(&self) -> Result<(), InstanceIdx> {
        let bound = self.lateral_stats.score().max(self.before.score());
        if self.worst_stats.score() <= bound + EPSILON {
            Ok(())
        } else {
            Err(self.offender.map_or(InstanceIdx(0), |(i, _)| i))
        }
    }

    /// The spread of the move's draws, in the sum of squares.
    pub fn noise(&self) -> f64 {
        self.noise
    }

    /// The expected score after the move (ties as fair draws, the spread of its own draws included).
    pub fn expected(&self) -> f64 {
        Stats {
            sum_sq: self.stats.sum_sq + self.noise,
            ..self.stats
        }
        .score()
    }

    /// The outcome the state records: the expected loads under odds, the lucky outcome otherwise. Its changed
    /// loads in instance order, and their statistics. The spread of the draws is not carried over: draws of one
    /// service's tasks are not independent (spread fills the emptiest first), and each later move counts its own.
    pub fn into_outcome(self) -> (Vec<LoadAt>, Stats) {
        (self.changed.sorted(), self.stats)
    }

    /// Every known expected load with the changes applied, by instance position (for whole-state computations such
    /// as a drain's refill).
    pub fn loads(&self) -> Vec<Option<f64>> {
        let mut v = self.base.to_vec();
        for l in self.changed.iter() {
            v[l.instance.get()] = Some(l.load);
        }
        v
    }
}

/// Loads a what-if changes: dense, so that a placement tied over thousands of instances costs array writes, not
/// hash-map inserts, with the list of the instances touched for the few moves that are accepted.
struct Layer {
    /// Per instance position.
    values: Vec<f64>,
    /// Per instance position: whether `values` holds a load.
    present: Vec<bool>,
    touched: Vec<InstanceIdx>,
}

impl Layer {
    fn empty() -> Layer {
        Layer {
            values: Vec::new(),
            present: Vec::new(),
            touched: Vec::new(),
        }
    }

    fn new(n: usize) -> Layer {
        Layer {
            values: vec![0.0; n],
            present: vec![false; n],
            touched: Vec::new(),
        }
    }

    fn get(&self, i: InstanceIdx) -> Option<f64> {
        let i = i.get();
        self.present[i].then(|| self.values[i])
    }

    fn set(&mut self, at: InstanceIdx, value: f64) {
        let i = at.get();
        if !self.present[i] {
            self.present[i] = true;
            self.touched.push(at);
        }
        self.values[i] = value;
    }

    fn iter(&self) -> impl Iterator<Item = LoadAt> + '_ {
        self.touched.iter().map(|&instance| LoadAt {
            instance,
            load: self.values[instance.get()],
        })
    }

    fn sorted(&self) -> Vec<LoadAt> {
        let mut v: Vec<LoadAt> = self.iter().collect();
        v.sort_unstable_by_key(|l| l.instance);
        v
    }

    /// Back to empty, in the time it took to fill.
    fn clear(&mut self) {
        for &i in &self.touched {
            self.present[i.get()] = false;
            self.values[i.get()] = 0.0;
        }
        self.touched.clear();
    }
}

impl Drop for Delta<'_> {
    fn drop(&mut self) {
        let mut spare = self.spare.borrow_mut();
        for mut layer in [
            std::mem::replace(&mut self.changed, Layer::empty()),
            std::mem::replace(&mut self.worst, Layer::empty()),
        ] {
            if !layer.values.is_empty() {
                layer.clear();
                spare.push(layer);
            }
        }
    }
}

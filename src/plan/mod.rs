//! The planner: one cycle's moves, each a lottery with known odds: accepted when it pays off on average, when even
//! its unluckiest outcome only shifts load sideways, and when no floor, constraint or budget can break. Pure:
//! `plan(&Cluster, &Policy, &LedgerView, now, Episode) -> Plan`, no clients, no clock, no randomness.
//!
//! - [`load`]: per-instance load, normalised for instance size, and the score.
//! - [`safety`]: every refusal as a typed [`safety::SkipReason`].
//! - [`budget`]: the one budget ledger.
//! - [`state`]: the cluster as moves are added (placements in an overlay, loads as expectations).
//! - [`search`]: the greedy choice by value, shared with the reference; one file per move kind: [`stop`],
//!   [`redeploy`], [`drain`].
//! - [`reachable`]: the reachable-balance reference (the same moves, every tie broken luckily).
//! - [`render`]: the `plan` command's table.
//! - [`view`]: what the planner reads from the ledger.

pub mod budget;
pub mod drain;
pub mod load;
pub mod reachable;
pub mod redeploy;
pub mod render;
pub mod safety;
pub mod search;
pub mod state;
pub mod stop;
pub mod view;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Cluster, InstanceIdx};
use crate::moves::{Move, MoveKind};
use crate::policy::Policy;

use search::Search;
use state::{Luck, State, EPSILON};

pub use load::{InstanceLoad, LoadModel};
pub use safety::{Skip, SkipReason};
pub use view::{InFlight, LedgerView, UnreadableRecord};

/// The hysteresis state the caller carries from cycle to cycle: once the score went above `trigger`, keep going
/// until it is at or below `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Episode {
    pub active: bool,
}

/// What a cycle concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The score is at or below the target (or below the trigger with no episode running).
    Balanced,
    /// Moves were planned.
    Planned,
    /// Above the threshold, but no move is both safe and predicted to help.
    NothingSafe,
    /// Above the threshold, and every move refused only for now: a cooldown, a budget, or work in flight
    /// ([`safety::WAITING`]). A later cycle may act.
    Waiting,
    /// The cycle refused to plan (too much unknown utilisation, or an unreadable ledger item that names no target).
    Halted,
}

/// One move, with its reason and the instances ECS could put its replacement(s) on.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    /// The move and what it acts on.
    pub mv: Move,
    /// The ARN of the move's service (a stop or a redeploy), for the reader of the plan.
    pub service_arn: Option<String>,
    pub reason: String,
    /// Every instance ECS could place the replacement(s) on. For a stop, ECS picks among them as if by a uniform
    /// draw, so the share of them in `improving_landing` is the move's odds.
    pub predicted_landing: Vec<String>,
    /// For a stop: the instances of `predicted_landing` where the move pays off. Empty for the other kinds.
    pub improving_landing: Vec<String>,
    pub tasks_restarted: u32,
    /// Tasks the move can hold below their service's desired count at once (`budgets.maxUnavailable`).
    pub unavailable: u32,
    /// The expected score after this move and every move before it (ties read as fair draws).
    pub score_after: f64,
}

/// The `plan` JSON of an action (docs/plan.md): the move's fields flat beside the rest, `kind` first.
impl Serialize for PlannedAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Json<'a> {
            kind: MoveKind,
            #[serde(skip_serializing_if = "Option::is_none")]
            task_arn: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            service_name: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            service_arn: Option<&'a str>,
            /// The instance the task leaves (stop-task) or the instance drained (drain-instance).
            #[serde(skip_serializing_if = "Option::is_none")]
            container_instance_arn: Option<&'a str>,
            reason: &'a str,
            predicted_landing: &'a [String],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            improving_landing: &'a [String],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            moved_tasks: &'a [String],
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            moved_services: &'a [String],
            tasks_restarted: u32,
            unavailable: u32,
            score_after: f64,
        }
        Json {
            kind: self.mv.kind(),
            task_arn: self.mv.task_arn(),
            service_name: self.mv.service_name(),
            service_arn: self.service_arn.as_deref(),
            container_instance_arn: self.mv.container_instance_arn(),
            reason: &self.reason,
            predicted_landing: &self.predicted_landing,
            improving_landing: &self.improving_landing,
            moved_tasks: self.mv.moved_tasks(),
            moved_services: self.mv.moved_services(),
            tasks_restarted: self.tasks_restarted,
            unavailable: self.unavailable,
            score_after: self.score_after,
        }
        .serialize(s)
    }
}

/// Scores and per-instance loads at one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadView {
    pub score: f64,
    pub instances: Vec<InstanceLoad>,
}

/// One cycle's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub cluster: String,
    pub policy: String,
    pub metric: String,
    pub mode: String,
    pub status: Status,
    /// Why the cycle ended where it did, in a sentence.
    pub summary: String,
    pub trigger: f64,
    pub target: f64,
    /// What the services' own strategies allow at best, when it was computed (`plan` and `simulate` do; the
    /// controller's cycle does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<reachable::Reachable>,
    /// Whether the next cycle should keep rebalancing (the hysteresis state to carry).
    pub episode: bool,
    pub before: LoadView,
    /// The expected loads after every action, ties read as fair draws.
    pub after: LoadView,
    /// The expected score after every action (the spread of each move's draws counted in).
    pub expected_score: f64,
    pub actions: Vec<PlannedAction>,
    pub skipped: Vec<Skip>,
}

/// The score of a cluster under a policy at `now` (what [`Plan::before`] reports), without planning any move.
pub fn score(cluster: &Cluster, policy: &Policy, now: DateTime<Utc>) -> f64 {
    let scored = cluster
        .instances()
        .iter()
        .map(|i| safety::instance_not_scored(i, policy, now).is_none())
        .collect();
    LoadModel::new(cluster, policy.metric, scored).score()
}

/// Plans one cycle.
pub fn plan(cluster: &Cluster, policy: &Policy, ledger: &LedgerView, now: DateTime<Utc>, episode: Episode) -> Plan {
    let mut search = Search::new(cluster, policy, ledger, now, Luck::Odds);
    let before = view(&search.state, &search.state.model.load, search.state.score());
    let score = before.score;
    let (trigger, target) = (policy.threshold.trigger, policy.threshold.target);
    if let Some(key) = ledger.unreadable_untargeted() {
        let summary = format!(
            "ledger item {key} cannot be read and names no target, so it could be a move of anything in flight: \
             planning nothing until it is repaired or deleted (see `ecs-rebalancer status`)"
        );
        return finish(search, before, Status::Halted, summary, episode.active);
    }
    let (unknown, total) = search.state.model.unknown_share();
    #[allow(clippy::cast_precision_loss)] // instance counts
    let share = if total == 0 { 0.0 } else { unknown as f64 / total as f64 };
    if share > policy.utilization.max_unknown_share {
        let summary = format!(
            "{unknown} of {total} instances have no {} data ({:.0}% > utilization.maxUnknownShare {:.0}%): \
             planning nothing rather than guessing",
            policy.metric,
            share * 100.0,
            policy.utilization.max_unknown_share * 100.0
        );
        return finish(search, before, Status::Halted, summary, episode.active);
    }
    let rebalancing = score > trigger || (episode.active && score > target);
    if !rebalancing && episode.active && !ledger.in_flight.is_empty() {
        // A score read while moves are still playing out (a deployment's old and new tasks both running) is not
        // where they will settle: the episode ends only once nothing is in flight.
        let summary = format!(
            "score {score:.3} is at or below the target {target}; the episode ends once the {} move(s) in flight \
             have settled",
            ledger.in_flight.len()
        );
        return finish(search, before, Status::Balanced, summary, true);
    }
    if !rebalancing {
        let summary = if score <= target {
            format!("score {score:.3} is at or below the target {target}")
        } else {
            format!("score {score:.3} is not above the trigger {trigger}, and no rebalancing is under way")
        };
        return finish(search, before, Status::Balanced, summary, false);
    }
    search.run(target, usize::MAX);
    if search.went_further && !further_pays(cluster, policy, ledger, now, search.accepted.len()) {
        search = Search::new(cluster, policy, ledger, now, Luck::Odds);
        search.further = false;
        search.run(target, usize::MAX);
    }
    let after = search.expected;
    let waiting = !search.skipped.is_empty() && search.skipped.iter().all(|s| safety::WAITING.contains(&s.label));
    let (status, summary) = if search.accepted.is_empty() && waiting {
        (
            Status::Waiting,
            format!(
                "score {score:.3} is above {}, and every move waits on a cooldown, a budget or work in flight: {}",
                if score > trigger { "the trigger" } else { "the target" },
                search.top_refusals()
            ),
        )
    } else if search.accepted.is_empty() {
        (
            Status::NothingSafe,
            format!(
                "score {score:.3} is above {}, but no move is both safe and expected to help; most refused: {}",
                if score > trigger { "the trigger" } else { "the target" },
                search.top_refusals()
            ),
        )
    } else {
        let restarted = search.budget.restarted();
        (
            Status::Planned,
            format!(
                "{} move(s), {restarted} task(s) restarted, expected score {after:.3}",
                search.accepted.len()
            ),
        )
    };
    finish(search, before, status, summary, true)
}

/// Cycles' worth of moves over which [`further_pays`] compares the two ways of planning.
const FURTHER_HORIZON: usize = 4;

/// Whether leaving services whose stops get stuck to their redeploys (`redeploy_beats_stops`) leads further than
/// the cheaper stops, judged with the budgets lifted (they set the pace, not the way) over the next few cycles'
/// worth of moves ([`FURTHER_HORIZON`] times this cycle's `planned`, at least 16 each): the lower expected score (the
/// target as a floor), and at the same score the fewer restarts. Going further is worth it when the other services
/// cannot make up for the stuck stops (instances of mixed sizes), and not when their own moves finish the job.
fn further_pays(cluster: &Cluster, policy: &Policy, ledger: &LedgerView, now: DateTime<Utc>, planned: usize) -> bool {
    let lifted = budget::lifted(policy);
    let target = policy.threshold.target;
    let horizon = FURTHER_HORIZON * planned.max(16);
    let outcome = |further: bool| {
        let mut search = Search::new(cluster, &lifted, ledger, now, Luck::Odds);
        search.further = further;
        search.run(target, horizon);
        (search.expected.max(target), search.budget.restarted())
    };
    let (further, cheaper) = (outcome(true), outcome(false));
    further.0 < cheaper.0 - EPSILON || (further.0 <= cheaper.0 + EPSILON && further.1 <= cheaper.1)
}

fn finish(search: Search<'_>, before: LoadView, status: Status, summary: String, episode: bool) -> Plan {
    let after = view(&search.state, &search.state.loads, search.state.score());
    let expected_score = search.expected;
    let policy = search.policy();
    let actions = search.accepted.iter().map(|a| action(&search, a)).collect();
    Plan {
        cluster: search.cluster().name().to_owned(),
        policy: policy.name.clone(),
        metric: policy.metric.to_string(),
        mode: policy.mode.to_string(),
        status,
        summary,
        trigger: policy.threshold.trigger,
        target: policy.threshold.target,
        reachable: None,
        episode,
        before,
        after,
        expected_score,
        actions,
        skipped: search.skipped,
    }
}

fn view(state: &State<'_>, loads: &[Option<f64>], score: f64) -> LoadView {
    LoadView {
        score,
        instances: state
            .cluster
            .instances()
            .iter()
            .enumerate()
            .map(|(i, inst)| InstanceLoad {
                container_instance_arn: inst.container_instance_arn.clone(),
                ec2_instance_id: inst.ec2_instance_id.clone(),
                capacity: state.model.capacity[i],
                load: loads[i],
            })
            .collect(),
    }
}

/// An accepted move as the plan reports it.
fn action(search: &Search<'_>, a: &search::Accepted) -> PlannedAction {
    let state = &search.state;
    let cluster = state.cluster;
    let p = &a.prediction;
    let names = |v: &[InstanceIdx]| -> Vec<String> { v.iter().map(|&i| state.arn(i).to_owned()).collect() };
    let service_arn = |name: &str| cluster.service(name).map(|s| s.service_arn.clone());
    let (mv, service_arn, reason) = match &a.mv {
        search::Move::Stop { service, source, .. } => {
            let (n, good) = (p.landing.len(), p.improving.len());
            let source_name = state.instance_name(*source);
            let mv = Move::StopTask {
                task_arn: a.task.map_or_else(String::new, |t| cluster.task_at(t).task_arn.clone()),
                service_name: service.clone(),
                container_instance_arn: state.arn(*source).to_owned(),
            };
            let reason = format!(
                "{source_name} is above the mean; ECS picks the replacement's instance among {n}, {good} of which \
                 lower the score, and none is busier than {source_name}"
            );
            (mv, service_arn(service), reason)
        }
        search::Move::Redeploy { service } => {
            let reason = format!(
                "a new deployment starts each replacement before it stops an old task (maximumPercent {}%), \
                 re-spreading {} task(s) toward the instances below the mean",
                cluster
                    .service(service)
                    .map_or(0, crate::model::Service::maximum_percent),
                p.cost.restarted
            );
            let mv = Move::RedeployService {
                service_name: service.clone(),
            };
            (mv, service_arn(service), reason)
        }
        search::Move::Drain { instance } => {
            let mv = Move::DrainInstance {
                container_instance_arn: state.arn(*instance).to_owned(),
                moved_tasks: p
                    .relocations
                    .iter()
                    .map(|r| cluster.task_at(r.task).task_arn.clone())
                    .collect(),
                moved_services: p
                    .relocations
                    .iter()
                    .filter_map(|r| cluster.task_at(r.task).service_name().map(str::to_owned))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            };
            let reason = format!(
                "{} carries more than its share; ECS moves its service tasks within each service's minimum and \
                 maximum percent, and the controller sets it ACTIVE again once they are gone, to be refilled",
                state.instance_name(*instance)
            );
            (mv, None, reason)
        }
    };
    PlannedAction {
        mv,
        service_arn,
        reason,
        predicted_landing: names(&p.landing),
        improving_landing: names(&p.improving),
        tasks_restarted: p.cost.restarted,
        unavailable: p.cost.unavailable,
        score_after: a.expected_after,
    }
}

//! The reachable-balance reference: how far the services' own placement strategies let the cluster go, and at what
//! cost. It is the measure of the planner, and it tells a user whether a target is feasible at all.
//!
//! A local search over legal ECS outcomes: the planner's own moves (a stop within the service's floor, a drain's
//! or a redeploy's start-before-stop re-placement, only the actions the policy allows, never an untouchable task),
//! predicted by the same placement engine, but with every tie broken **luckily** (the tied instance that lowers
//! the score most), no budgets, no cooldowns and no grace period for new instances. It runs in rounds: each round
//! greedily takes the best moves by score drop per restarted task on one placement index, then writes them into
//! the snapshot, so a later round may move a task again. It stops when no move lowers the score.
//!
//! Its score is a bound no real run can be expected to beat (real ties are not lucky); its restarts are a floor
//! on what reaching that score costs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{
    Cluster, InstanceIdx, InstanceStatus, PlacementStrategyType, SchedulingStrategy, Snapshot, Task, TaskIdx,
    TaskStatus,
};
use crate::placement::Footprint;
use crate::policy::{Metric, Policy};

use super::load::{hottest_first, LoadAt, LoadModel, Stats};
use super::search::Search;
use super::state::{Luck, EPSILON};
use super::view::LedgerView;

/// Moves one round takes before the snapshot is rewritten and the index rebuilt.
const ROUND: usize = 200;
/// Rounds at most; the search reports whether it finished.
const MAX_ROUNDS: usize = 100;
/// How close to the whole-task floor the reachable score must be for whole tasks to be named as the cause.
const WHOLE_TASK_SLACK: f64 = 0.02;
/// Rounds without a better state after which the search stops.
const PLATEAU: usize = 3;

/// What the services' own strategies allow at best.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reachable {
    /// The best score the reference reached.
    pub score: f64,
    /// Tasks it restarted to get there.
    pub restarts: u32,
    /// Its moves by kind, to get there.
    pub moves: BTreeMap<String, u32>,
    /// False when it stopped at its round limit rather than at a state no move improves.
    pub complete: bool,
    /// When the reachable score is above the policy's target: why, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// The reference's copy of a policy: no budgets, no new-instance grace (time lifts both), the same actions,
/// metric, exclusions and threshold.
fn unconstrained(policy: &Policy) -> Policy {
    let mut p = super::budget::lifted(policy);
    p.cooldown.new_instance = std::time::Duration::ZERO;
    p
}

/// Runs the reference on a snapshot at `now`.
pub fn reachable(snapshot: &Snapshot, policy: &Policy, now: DateTime<Utc>) -> Reachable {
    let policy = unconstrained(policy);
    let empty = LedgerView::default();
    let mut snap = snapshot.clone();
    let mut best: Option<(f64, u32, BTreeMap<String, u32>)> = None;
    let mut restarts = 0u32;
    let mut moves: BTreeMap<String, u32> = BTreeMap::new();
    let mut complete = false;
    let mut last: Option<Snapshot> = None;
    let mut flat = 0;
    for _ in 0..MAX_ROUNDS {
        let Ok(cluster) = Cluster::new(snap.clone()) else {
            break;
        };
        let mut search = Search::new(&cluster, &policy, &empty, now, Luck::Lucky);
        let start = search.state.score();
        if best.as_ref().is_none_or(|(s, ..)| start < *s - EPSILON) {
            best = Some((start, restarts, moves.clone()));
            flat = 0;
        } else {
            // A drain judged by its settled state can lead the search round a loop (drain, refill, drain):
            // a few rounds without a better state end it.
            flat += 1;
            if flat >= PLATEAU {
                complete = true;
                last = Some(snap.clone());
                break;
            }
        }
        search.run(f64::NEG_INFINITY, ROUND);
        if search.accepted.is_empty() {
            complete = true;
            last = Some(snap.clone());
            break;
        }
        for a in &search.accepted {
            restarts = restarts.saturating_add(a.prediction.cost.restarted);
            *moves.entry(a.mv.kind().to_string()).or_default() += 1;
            for r in &a.prediction.relocations {
                relocate(&mut snap, r.task, r.to);
            }
        }
    }
    let end_state = last.unwrap_or_else(|| snap.clone());
    if let Ok(cluster) = Cluster::new(snap) {
        let score = super::score(&cluster, &policy, now);
        if best.as_ref().is_none_or(|(s, ..)| score < *s - EPSILON) {
            best = Some((score, restarts, moves));
        }
    }
    let (score, restarts, moves) = best.unwrap_or((0.0, 0, BTreeMap::new()));
    let cause = (score > policy.threshold.target + EPSILON)
        .then(|| Cluster::new(end_state).ok().map(|c| cause(&c, &policy, now, score)))
        .flatten();
    Reachable {
        score,
        restarts,
        moves,
        complete,
        cause,
    }
}

/// Moves task `t` of the snapshot to instance `to`, with ECS's bookkeeping on both instances.
fn relocate(snap: &mut Snapshot, t: TaskIdx, to: InstanceIdx) {
    let Some(task) = snap.tasks.get(t.get()) else { return };
    let Ok(fp) = Footprint::of_task(task) else { return };
    let from = task.container_instance_arn.as_deref().and_then(|a| {
        snap.container_instances
            .iter()
            .position(|i| i.container_instance_arn == a)
    });
    let gpus: Vec<String> = task.containers.iter().flat_map(|c| c.gpu_ids.clone()).collect();
    let running = task.last_status == TaskStatus::Running;
    if let Some(from) = from {
        let i = &mut snap.container_instances[from];
        fp.book(i, &gpus, false);
        if running {
            i.running_tasks_count = i.running_tasks_count.saturating_sub(1);
        }
    }
    let dest = &mut snap.container_instances[to.get()];
    let free: Vec<String> = dest
        .remaining(crate::model::ecs::resource::GPU)
        .and_then(|r| r.string_set_value.clone())
        .unwrap_or_default()
        .into_iter()
        .take(gpus.len())
        .collect();
    fp.book(dest, &free, true);
    if running {
        dest.running_tasks_count += 1;
    }
    let (arn, az) = (
        dest.container_instance_arn.clone(),
        dest.availability_zone().map(str::to_owned),
    );
    let task = &mut snap.tasks[t.get()];
    task.container_instance_arn = Some(arn);
    task.availability_zone = az;
    let mut rest = free.into_iter();
    for c in &mut task.containers {
        let n = c.gpu_ids.len();
        c.gpu_ids = rest.by_ref().take(n).collect();
    }
}

/// Why the reference's end state is still above the target, in a sentence: the largest share of the remaining
/// imbalance that one explanation accounts for.
fn cause(cluster: &Cluster, policy: &Policy, now: DateTime<Utc>, reachable: f64) -> String {
    let scored: Vec<bool> = cluster
        .instances()
        .iter()
        .map(|i| super::safety::instance_not_scored(i, policy, now).is_none())
        .collect();
    let model = LoadModel::new(cluster, policy.metric, scored);
    let known: Vec<LoadAt> = cluster
        .instance_indexes()
        .filter_map(|instance| model.load_at(instance).map(|load| LoadAt { instance, load }))
        .collect();
    if known.len() < 2 {
        return "fewer than two instances can be balanced".into();
    }
    if policy.metric == Metric::Count {
        let floor = whole_task_floor(&model, &known);
        if floor > policy.threshold.target + EPSILON && reachable <= floor + WHOLE_TASK_SLACK {
            return format!(
                "tasks are whole: the tasks counted cannot be spread over {} instances of these sizes more evenly \
                 than a score of {floor:.2}",
                known.len()
            );
        }
    }
    #[allow(clippy::cast_precision_loss)] // instance counts
    let mean = known.iter().map(|k| k.load).sum::<f64>() / known.len() as f64;
    let mut hot: Vec<LoadAt> = known.iter().copied().filter(|k| k.load > mean + EPSILON).collect();
    hottest_first(&mut hot);
    // What pins the load on the instances above the mean.
    let mut pinned: BTreeMap<&'static str, (u32, Vec<String>)> = BTreeMap::new();
    let mut note = |why: &'static str, what: String| {
        let e = pinned.entry(why).or_default();
        e.0 += 1;
        if !e.1.contains(&what) && e.1.len() < 3 {
            e.1.push(what);
        }
    };
    for h in &hot {
        for t in cluster.tasks_on(&cluster.instance_at(h.instance).container_instance_arn) {
            if let Some((why, what)) = what_pins(cluster, policy, now, t) {
                note(why, what);
            }
        }
    }
    let sizes: Vec<f64> = known.iter().map(|k| model.capacity_of(k.instance)).collect();
    let (small, large) = sizes
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &c| (lo.min(c), hi.max(c)));
    let (why, (n, examples)) = pinned
        .iter()
        .max_by_key(|(_, (n, _))| *n)
        .map_or(("", (0, Vec::new())), |(w, v)| (*w, v.clone()));
    let mut out = if why == "spread services" && large > small * 1.2 {
        spread_over_sizes(cluster, &known)
    } else if n > 0 {
        format!(
            "the load left above the mean is held by {why}: {}{}",
            examples.join(", "),
            if n as usize > examples.len() { ", …" } else { "" }
        )
    } else {
        "no move the policy allows improves the balance further".to_owned()
    };
    let draining = cluster
        .instances()
        .iter()
        .filter(|i| i.status == InstanceStatus::Draining)
        .count();
    if draining > 0 {
        let _ = write!(out, "; {draining} instance(s) are DRAINING and not balanced");
    }
    out
}

/// What keeps a task on a hot instance, as (explanation, example), or `None` for a task that does not count
/// (stopping, a daemon, a service not in the snapshot).
fn what_pins(cluster: &Cluster, policy: &Policy, now: DateTime<Utc>, t: &Task) -> Option<(&'static str, String)> {
    if t.desired_status == TaskStatus::Stopped {
        return None;
    }
    let Some(name) = t.service_name() else {
        return Some(("standalone tasks (nothing would replace them)", t.task_arn.clone()));
    };
    let svc = cluster.service(name)?;
    if svc.scheduling_strategy == SchedulingStrategy::Daemon {
        return None;
    }
    let protected = || {
        cluster
            .snapshot()
            .protected_tasks
            .iter()
            .any(|p| p.task_arn == t.task_arn && p.active_at(now))
    };
    let why = if policy.exclude.service_reason(svc).is_some() {
        "services excluded by the policy"
    } else if protected() {
        "tasks with scale-in protection"
    } else if super::safety::no_room_to_move(svc) {
        "services whose minimumHealthyPercent and maximumPercent leave ECS no room to move a task"
    } else if !svc.placement_constraints.is_empty() {
        "services whose placement constraints keep them where they are"
    } else if svc
        .placement_strategy
        .iter()
        .any(|s| s.kind == PlacementStrategyType::Binpack)
    {
        "binpack services (a replacement goes back to the fullest instance)"
    } else {
        "spread services"
    };
    Some((why, name.to_owned()))
}

/// The cause when spread services hold the load on instances of different sizes.
fn spread_over_sizes(cluster: &Cluster, known: &[LoadAt]) -> String {
    let vcpu = |i: InstanceIdx| {
        cluster
            .instance_at(i)
            .registered(crate::model::ecs::resource::CPU)
            .and_then(|r| r.number())
            .unwrap_or(0.0)
            / 1024.0
    };
    let (lo, hi) = known.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), k| {
        (lo.min(vcpu(k.instance)), hi.max(vcpu(k.instance)))
    });
    let spread = cluster
        .services()
        .iter()
        .filter(|s| {
            s.scheduling_strategy != SchedulingStrategy::Daemon
                && s.placement_strategy
                    .iter()
                    .all(|p| p.kind != PlacementStrategyType::Binpack)
        })
        .count();
    format!(
        "{spread} services spread over instances of {lo:.0} to {hi:.0} vCPU; spread fills instances equally by \
         task count, not by size"
    )
}

/// About the best `count` score whole tasks allow: every counted task handed out, one at a time, to the class of
/// instances (instances of one size) where it lowers the score most, spread evenly within the class.
fn whole_task_floor(model: &LoadModel, known: &[LoadAt]) -> f64 {
    let mut classes: Vec<SizeClass> = Vec::new();
    let mut tasks = 0.0;
    for k in known {
        let cap = model.capacity_of(k.instance);
        if cap <= 0.0 {
            continue;
        }
        tasks += k.load * cap;
        match classes.iter_mut().find(|c| (c.capacity - cap).abs() < 1e-9) {
            Some(c) => c.instances += 1.0,
            None => classes.push(SizeClass {
                capacity: cap,
                instances: 1.0,
                tasks: 0.0,
            }),
        }
    }
    let stats = |classes: &[SizeClass]| {
        let mut s = Stats::default();
        for &SizeClass {
            capacity: cap,
            instances: m,
            tasks: t,
        } in classes
        {
            let q = (t / m).floor();
            let r = t - q * m;
            let (lo, hi) = (q / cap, (q + 1.0) / cap);
            s.n += m;
            s.sum += (m - r) * lo + r * hi;
            s.sum_sq += (m - r) * lo * lo + r * hi * hi;
        }
        s
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a task count
    for _ in 0..tasks.round().max(0.0) as u64 {
        let best = (0..classes.len()).min_by(|&a, &b| {
            let with = |k: usize| {
                let mut c = classes.clone();
                c[k].tasks += 1.0;
                stats(&c).score()
            };
            with(a).total_cmp(&with(b))
        });
        match best {
            Some(k) => classes[k].tasks += 1.0,
            None => break,
        }
    }
    stats(&classes).score()
}

/// Instances of one size, and the tasks handed out to them.
#[derive(Debug, Clone, Copy)]
struct SizeClass {
    capacity: f64,
    instances: f64,
    tasks: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::builder::{instance, service, ClusterBuilder};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc()
    }

    fn policy(actions: &str) -> Policy {
        let text = format!(
            "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {{name: t}}\nspec:\n  clusters: [\"*\"]\n  \
             metric: count\n  threshold: {{trigger: 0.2, target: 0.05}}\n  actions: [{actions}]\n"
        );
        crate::policy::load_str(std::path::Path::new("t.yaml"), &text)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn lucky_stops_fill_the_empty_instances() {
        let mut b = ClusterBuilder::new("c");
        for id in ["a", "b", "c", "d"] {
            b = b.instance(instance(id).registered_at("2026-11-01T00:00:00Z"));
        }
        b = b.service(service("web").spread("instanceId").deployment(50, 200));
        let snap = b.tasks("web", "a", 4).tasks("web", "b", 4).snapshot();
        let r = reachable(&snap, &policy("stop-tasks"), now());
        assert!(r.score < 1e-9, "{r:?}");
        assert_eq!(r.restarts, 4, "one lucky stop per task that has to move: {r:?}");
        assert!(r.complete);
        assert!(r.cause.is_none());
    }

    #[test]
    fn a_floor_at_100_percent_leaves_only_start_before_stop_moves() {
        let mut b = ClusterBuilder::new("c");
        for id in ["a", "b", "c"] {
            b = b.instance(instance(id).registered_at("2026-11-01T00:00:00Z"));
        }
        b = b.service(service("pay").spread("instanceId").deployment(100, 200));
        let snap = b.tasks("pay", "a", 6).snapshot();
        let start = crate::plan::score(&Cluster::new(snap.clone()).unwrap(), &policy("stop-tasks"), now());
        let stops_only = reachable(&snap, &policy("stop-tasks"), now());
        assert!(
            (stops_only.score - start).abs() < 1e-9,
            "no stop is within the floor: {stops_only:?}"
        );
        assert!(stops_only.cause.unwrap_or_default().contains("pay"));
        let with_redeploys = reachable(&snap, &policy("stop-tasks, redeploy-services"), now());
        assert!(with_redeploys.score < start - 0.5, "{with_redeploys:?}");
        assert!(
            with_redeploys.moves.contains_key("redeploy-services"),
            "{with_redeploys:?}"
        );
    }

    #[test]
    fn the_cause_names_spread_over_mixed_sizes() {
        let mut b = ClusterBuilder::new("c");
        for (id, cpu) in [("small-1", 2048), ("small-2", 2048), ("big-1", 8192), ("big-2", 8192)] {
            b = b.instance(
                instance(id)
                    .cpu(cpu)
                    .memory(cpu * 4)
                    .registered_at("2026-11-01T00:00:00Z"),
            );
        }
        for s in 0..4 {
            let name = format!("svc-{s}");
            b = b.service(
                service(&name)
                    .spread("instanceId")
                    .cpu(128)
                    .memory(128)
                    .deployment(0, 100),
            );
            for id in ["small-1", "small-2", "big-1", "big-2"] {
                b = b.tasks(&name, id, 1);
            }
        }
        let r = reachable(&b.snapshot(), &policy("stop-tasks"), now());
        let cause = r.cause.unwrap_or_default();
        assert!(cause.contains("spread over instances of 2 to 8 vCPU"), "{cause}");
    }
}

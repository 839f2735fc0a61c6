//! `simulate` and `demo`: the real controller cycle ([`Controller`]) against the twin, cycle after cycle, until the
//! cluster holds at or below the policy's target with nothing in flight, until no safe move can improve it, or until
//! a cycle limit. Then an audit of the end state against the start.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ledger::memory::MemoryLedger;
use crate::model::{Cluster, InstanceStatus, Snapshot, TaskStatus};
use crate::placement::{Constraint, Facts, PlacementIndex};
use crate::plan::reachable::{reachable, Reachable};
use crate::plan::safety::WAITING;
use crate::plan::Status;
use crate::policy::{Mode, Policy};
use crate::reconcile::{error_policy, Controller, CycleReport};
use crate::twin::{Twin, TwinConfig};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_cycles: u32,
    pub twin: TwinConfig,
    /// Compute the reachable-balance reference at the start (and again if the run gets stuck).
    pub reachable: bool,
    /// Run all `max_cycles` cycles, also past convergence or a fixed point: a rehearsal of hours of the controller,
    /// where what it does once the cluster is balanced matters as much as how it got there.
    pub keep_running: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_cycles: 200,
            twin: TwinConfig::default(),
            reachable: true,
            keep_running: false,
        }
    }
}

/// How a simulation ended, and what it cost.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cluster: String,
    pub policy: String,
    /// The policy said `dry-run`; the simulation acted as if `enforce`.
    pub simulated_as_enforced: bool,
    pub cycles: u32,
    pub converged: bool,
    /// Why it stopped, in a sentence.
    pub outcome: String,
    pub score_before: f64,
    pub score_after: f64,
    pub target: f64,
    /// What the services' own strategies allow from the start, with lucky ties (`plan::reachable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<Reachable>,
    /// The same reference from where the run got stuck, if it did: reached by legal moves, so what it finds is
    /// reachable from the start too (the search is local, and may find more from there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable_from_here: Option<f64>,
    pub actions_by_kind: BTreeMap<String, u32>,
    pub tasks_restarted: u32,
    /// Tasks the twin started during the run (replacements and redeployed tasks), for comparison with baselines.
    pub tasks_started: u64,
    pub mispredictions: u32,
    /// Stops whose replacement landed where the move does not pay off: draws the odds allowed for.
    pub unlucky: u32,
    pub failed_actions: u32,
    /// The twin's count of ticks with a service below its healthy floor because of an API call (must be 0).
    pub floor_violations: u64,
    pub backed_off: Vec<String>,
    pub simulated_seconds: i64,
    /// Broken rules found by auditing the end state against the start (must be empty).
    pub violations: Vec<String>,
    /// The observed score at each cycle, with the tasks the twin had started by then: where the run was after how
    /// much disruption, for comparing at equal balance ([`restarts_to_reach`]).
    #[serde(skip)]
    pub trajectory: Vec<Milestone>,
}

/// The score the controller observed at one cycle, and the tasks the twin had started for it by then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Milestone {
    pub score: f64,
    pub tasks_started: u64,
}

/// The tasks the controller's run had started when its observed score first was at or below `score`: its cost
/// of reaching the balance another behaviour ended at. `None` when the run never got that low.
pub fn restarts_to_reach(ours: &Report, score: f64) -> Option<u64> {
    ours.trajectory
        .iter()
        .find(|m| m.score <= score + crate::plan::state::EPSILON)
        .map(|m| m.tasks_started)
}

/// One line of progress, for `demo` and `simulate -o table`.
pub struct Progress<'a> {
    pub cycle: u32,
    pub elapsed_seconds: i64,
    pub report: &'a CycleReport,
}

/// Runs the controller against a twin of `snapshot` until it converges, gets stuck, or reaches the cycle limit.
pub async fn run(
    snapshot: Snapshot,
    policy: &Policy,
    options: Options,
    mut on_cycle: impl FnMut(&Progress<'_>),
) -> (Report, Snapshot) {
    let initial = snapshot.clone();
    let cluster_name = snapshot.cluster.clone();
    let twin = Twin::new(snapshot, options.twin);
    let ledger = MemoryLedger::new();
    let start = twin.now();
    let reference = options.reachable.then(|| reachable(&initial, policy, start));
    let mut controller = Controller::new(&twin, &ledger, policy.clone(), &cluster_name).enforce_always();
    let mut converged = false;
    let mut trajectory = Vec::new();
    let mut outcome = format!("stopped after {} cycles without holding the target", options.max_cycles);
    let mut reachable_from_here = None;
    for cycle in 1..=options.max_cycles {
        let now = twin.now();
        match controller.cycle(now).await {
            Ok(report) => {
                trajectory.push(Milestone {
                    score: report.plan.before.score,
                    tasks_started: twin.stats().tasks_started,
                });
                on_cycle(&Progress {
                    cycle,
                    elapsed_seconds: (now - start).num_seconds(),
                    report: &report,
                });
                let quiet = report.in_flight == 0 && report.acted.is_empty() && twin.is_steady();
                if quiet && report.plan.status == Status::Balanced && !report.plan.episode {
                    if !converged {
                        converged = true;
                        let at = if options.keep_running {
                            format!(" (first at cycle {cycle})")
                        } else {
                            String::new()
                        };
                        outcome = format!(
                            "converged: score {:.3} at or below the target {} with nothing in flight{at}",
                            report.plan.before.score, policy.threshold.target
                        );
                    }
                    if !options.keep_running {
                        break;
                    }
                }
                // A fixed point: nothing in flight, nothing sendable, and no refusal that time would lift.
                let stuck = report.plan.skipped.iter().all(|s| !WAITING.contains(&s.label));
                if quiet
                    && matches!(report.plan.status, Status::NothingSafe | Status::Halted)
                    && stuck
                    && !options.keep_running
                {
                    reachable_from_here = options
                        .reachable
                        .then(|| reachable(&twin.snapshot(), policy, now).score);
                    let here =
                        reachable_from_here.map_or_else(String::new, |r| format!(", reachable from here {r:.2}"));
                    outcome = format!(
                        "stuck at {:.2} (target {:.2}{here}): {}",
                        report.plan.before.score, policy.threshold.target, report.plan.summary
                    );
                    break;
                }
                twin.advance(report.requeue_after);
            }
            Err(e) => twin.advance(error_policy(&e)),
        }
    }
    // Let what the last cycle started play out before the audit (no new moves).
    for _ in 0..60 {
        if twin.is_steady() {
            break;
        }
        twin.advance(std::time::Duration::from_secs(30));
    }
    let stats = controller.stats.clone();
    let end = twin.snapshot();
    let twin_stats = twin.stats();
    let report = Report {
        cluster: cluster_name,
        policy: policy.name.clone(),
        simulated_as_enforced: policy.mode == Mode::DryRun,
        cycles: stats.cycles,
        converged,
        outcome,
        score_before: trajectory.first().map_or(0.0, |m| m.score),
        score_after: trajectory.last().map_or(0.0, |m| m.score),
        target: policy.threshold.target,
        reachable: reference,
        reachable_from_here,
        actions_by_kind: stats.actions_by_kind,
        tasks_restarted: stats.tasks_restarted,
        tasks_started: twin_stats.tasks_started,
        mispredictions: stats.mispredictions,
        unlucky: stats.unlucky,
        failed_actions: stats.failed,
        floor_violations: twin_stats.floor_violations,
        backed_off: stats.backed_off,
        simulated_seconds: (twin.now() - start).num_seconds(),
        violations: audit(&initial, &end, policy),
        trajectory,
    };
    (report, end)
}

/// Everything the controller must never cause, checked on the end state: over-reserved instances, port clashes,
/// broken constraints, untouchable tasks moved, foreign DRAINING instances set ACTIVE.
pub fn audit(initial: &Snapshot, end: &Snapshot, policy: &Policy) -> Vec<String> {
    let Ok(cluster) = Cluster::new(end.clone()) else {
        return vec!["the end state has duplicate ARNs".into()];
    };
    let mut v = audit_resources(&cluster);
    v.extend(audit_constraints(&cluster));
    if let Ok(before) = Cluster::new(initial.clone()) {
        v.extend(audit_untouchables(&before, &cluster, policy));
    }
    v.sort();
    v.dedup();
    v
}

/// Over-reserved instances and host ports bound twice.
fn audit_resources(cluster: &Cluster) -> Vec<String> {
    let mut v = Vec::new();
    for i in cluster.instances() {
        let id = i
            .ec2_instance_id
            .clone()
            .unwrap_or_else(|| i.container_instance_arn.clone());
        for name in ["CPU", "MEMORY"] {
            if i.remaining(name).and_then(|r| r.number()).is_some_and(|n| n < 0.0) {
                v.push(format!("{id}: {name} over-reserved"));
            }
        }
        let mut ports = BTreeSet::new();
        for t in cluster.tasks_on(&i.container_instance_arn) {
            for b in t.containers.iter().flat_map(|c| &c.network_bindings) {
                if let Some(p) = b.host_port {
                    if !ports.insert((p, b.protocol.clone().map(|p| p.to_string()))) {
                        v.push(format!("{id}: host port {p} bound twice"));
                    }
                }
            }
        }
    }
    v
}

/// Tasks that break their service's placement constraints.
fn audit_constraints(cluster: &Cluster) -> Vec<String> {
    let mut v = Vec::new();
    let index = PlacementIndex::new(cluster);
    for svc in cluster.services() {
        let Ok(request) = index.request_for_service(svc) else {
            continue;
        };
        for t in cluster.tasks_of(&svc.service_name) {
            let Some(i) = t.container_instance_arn.as_deref().and_then(|a| cluster.instance(a)) else {
                continue;
            };
            let groups: Vec<&str> = cluster
                .tasks_on(&i.container_instance_arn)
                .filter_map(|t| t.group.as_deref())
                .collect();
            for c in &request.constraints {
                match c {
                    Constraint::MemberOf { text, expr } => {
                        let facts = Facts {
                            instance: i,
                            running: i.running_tasks_count,
                            groups: &groups,
                        };
                        if !expr.eval(&facts) {
                            v.push(format!(
                                "{}: task {} breaks memberOf({text})",
                                svc.service_name, t.task_arn
                            ));
                        }
                    }
                    Constraint::DistinctInstance => {
                        let same = cluster
                            .tasks_on(&i.container_instance_arn)
                            .filter(|o| o.group == t.group && o.desired_status != TaskStatus::Stopped)
                            .count();
                        if same > 1 {
                            v.push(format!(
                                "{}: two tasks on one instance despite distinctInstance",
                                svc.service_name
                            ));
                        }
                    }
                }
            }
        }
    }
    v
}

/// Untouchables that moved, and foreign drains that were undone or refilled.
fn audit_untouchables(before: &Cluster, cluster: &Cluster, policy: &Policy) -> Vec<String> {
    let mut v = Vec::new();
    // Untouchables: standalone, protected and excluded services' tasks that ran at the start still run, on the same
    // instance.
    for t in before.tasks().iter().filter(|t| t.last_status == TaskStatus::Running) {
        let excluded = t
            .service_name()
            .and_then(|s| before.service(s))
            .is_some_and(|s| policy.exclude.service_reason(s).is_some());
        let protected = before
            .snapshot()
            .protected_tasks
            .iter()
            .any(|p| p.task_arn == t.task_arn && p.protection_enabled);
        let standalone = t.service_name().is_none();
        let on_foreign_drain = t
            .container_instance_arn
            .as_deref()
            .and_then(|a| before.instance(a))
            .is_some_and(|i| i.status != InstanceStatus::Active);
        if (excluded || protected || standalone) && !on_foreign_drain {
            let still = cluster.task(&t.task_arn).is_some_and(|e| {
                e.desired_status != TaskStatus::Stopped && e.container_instance_arn == t.container_instance_arn
            });
            if !still {
                v.push(format!("untouchable task {} was moved or stopped", t.task_arn));
            }
        }
    }
    for i in before
        .instances()
        .iter()
        .filter(|i| i.status == InstanceStatus::Draining)
    {
        if cluster
            .instance(&i.container_instance_arn)
            .is_some_and(|e| e.status == InstanceStatus::Active)
        {
            v.push(format!(
                "foreign DRAINING instance {} was set ACTIVE",
                i.container_instance_arn
            ));
        }
        if cluster
            .tasks_on(&i.container_instance_arn)
            .any(|t| before.task(&t.task_arn).is_none())
        {
            v.push(format!(
                "a new task landed on foreign DRAINING instance {}",
                i.container_instance_arn
            ));
        }
    }
    v
}

/// One line per cycle (the moves planned, by kind; those settled; those in flight); with `bars`, each instance's
/// observed load as a bar under it.
pub fn render_cycle(p: &Progress<'_>, bars: bool) -> String {
    use std::fmt::Write as _;
    let plan = &p.report.plan;
    let mut planned: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &plan.actions {
        *planned.entry(a.mv.kind().as_str()).or_default() += 1;
    }
    let planned: Vec<String> = if planned.is_empty() {
        vec!["nothing".into()]
    } else {
        planned.iter().map(|(k, n)| format!("{k} ×{n}")).collect()
    };
    let mut out = format!(
        "cycle {:>3}  t+{:>3}m{:02}s  score {:.3}  planned {:<28} settled {:>2}  in flight {:>2}\n",
        p.cycle,
        p.elapsed_seconds / 60,
        p.elapsed_seconds % 60,
        plan.before.score,
        planned.join(", "),
        p.report.settled.len(),
        p.report.in_flight
    );
    if bars {
        let max = plan
            .before
            .instances
            .iter()
            .filter_map(|i| i.load)
            .fold(0.0f64, f64::max);
        for i in &plan.before.instances {
            let name = i.ec2_instance_id.as_deref().unwrap_or(&i.container_instance_arn);
            let (bar, value) = match i.load {
                Some(l) => {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bounded to 0..=40
                    let n = if max > 0.0 {
                        ((l / max) * 40.0).round() as usize
                    } else {
                        0
                    };
                    (
                        format!("{}{}", "█".repeat(n), "·".repeat(40 - n.min(40))),
                        format!("{l:5.2}"),
                    )
                }
                None => ("(not balanced)".to_owned(), "    -".to_owned()),
            };
            let _ = writeln!(out, "    {name:<12} {bar} {value}");
        }
    }
    out
}

/// The end-of-run summary.
pub fn render_report(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{}", r.outcome);
    if r.simulated_as_enforced {
        let _ = writeln!(out, "(policy {} is dry-run; simulated as if enforced)", r.policy);
    }
    let kinds: Vec<String> = r.actions_by_kind.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    let reachable = r.reachable.as_ref().map_or_else(String::new, |x| {
        format!(
            ", reachable ≈ {:.3} with {} restart(s){}",
            x.score,
            x.restarts,
            if x.complete { "" } else { " (search cut short)" }
        )
    });
    let _ = writeln!(
        out,
        "score {:.3} → {:.3} (target {}{reachable}) in {} cycles, {}m{:02}s simulated",
        r.score_before,
        r.score_after,
        r.target,
        r.cycles,
        r.simulated_seconds / 60,
        r.simulated_seconds % 60
    );
    // The reference from where the run stopped can find more than the one from the start (both are local searches):
    // the target is only called out of reach when neither reaches it.
    let here_reaches = r.reachable_from_here.is_some_and(|h| h <= r.target + 1e-9);
    if let Some(cause) = r
        .reachable
        .as_ref()
        .and_then(|x| x.cause.as_ref())
        .filter(|_| !here_reaches)
    {
        let _ = writeln!(out, "the target is out of reach: {cause}");
    }
    let _ = writeln!(
        out,
        "actions: {}; tasks restarted {}; mispredictions {}; unlucky draws {}; failed {}; floor violations {}",
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        },
        r.tasks_restarted,
        r.mispredictions,
        r.unlucky,
        r.failed_actions,
        r.floor_violations
    );
    if r.violations.is_empty() {
        let _ = writeln!(
            out,
            "audit: no broken constraints, over-reserved instances, port clashes or moved untouchables"
        );
    } else {
        let _ = writeln!(out, "audit found {} violation(s):", r.violations.len());
        for v in &r.violations {
            let _ = writeln!(out, "  - {v}");
        }
    }
    out
}

/// One behaviour's totals on a scenario, for `--compare-baselines`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineResult {
    pub name: String,
    /// Tasks the twin started (replacements, redeployed tasks, daemons restarted after a drain).
    pub tasks_started: u64,
    pub final_score: f64,
    pub floor_violations: u64,
    pub simulated_seconds: i64,
    /// The tasks ecs-rebalancer's run had started when it first observed a score at or below this behaviour's
    /// final one: the two compared at equal balance. `None` when the run never got that low.
    pub ours_to_reach: Option<u64>,
}

/// The policy's score of a snapshot.
fn score_of(snapshot: &Snapshot, policy: &Policy) -> f64 {
    Cluster::new(snapshot.clone()).map_or(0.0, |c| {
        crate::plan::score(&c, policy, c.snapshot().captured_at.unwrap_or_default())
    })
}

/// Sample coefficient of variation of task counts (running + pending) over ACTIVE instances, as the partial-drain
/// tool computes it.
fn count_cv(snapshot: &Snapshot) -> f64 {
    let counts: Vec<f64> = snapshot
        .container_instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Active)
        .map(|i| f64::from(i.running_tasks_count + i.pending_tasks_count))
        .collect();
    let n = counts.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = counts.iter().sum::<f64>() / n;
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if mean > 0.0 {
        var.sqrt() / mean
    } else {
        0.0
    }
}

/// The two behaviours used in the field, played on the same scenario, from their published descriptions:
/// (a) "partial drain" (maginetv/ecs-task-balancer), as [`partial_drain`] plays it; (b) force-redeploy every service
/// when an empty instance joins (aws-samples ecs-refarch-task-rebalancing). Each runs for `duration` of simulated
/// time. `ours` is ecs-rebalancer's run on the same scenario, to which each is compared at its own final score.
pub async fn baselines(
    snapshot: &Snapshot,
    policy: &Policy,
    options: Options,
    duration: std::time::Duration,
    ours: &Report,
) -> Vec<BaselineResult> {
    use crate::ecs::EcsApi;
    let mut out = Vec::new();

    let twin = Twin::new(snapshot.clone(), options.twin);
    let start = twin.now();
    let end = start + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
    while twin.now() < end {
        let run_started = twin.now();
        partial_drain(&twin).await;
        let next = run_started + chrono::Duration::from_std(partial::EVERY).unwrap_or(chrono::Duration::MAX);
        if let Ok(wait) = (next - twin.now()).to_std() {
            twin.advance(wait);
        }
    }
    let final_score = score_of(&twin.snapshot(), policy);
    out.push(BaselineResult {
        name: "partial drain (maginetv/ecs-task-balancer)".into(),
        tasks_started: twin.stats().tasks_started,
        final_score,
        floor_violations: twin.stats().floor_violations,
        simulated_seconds: (twin.now() - start).num_seconds(),
        ours_to_reach: restarts_to_reach(ours, final_score),
    });

    let twin = Twin::new(snapshot.clone(), options.twin);
    let start = twin.now();
    let empty_joined = Cluster::new(snapshot.clone()).is_ok_and(|c| {
        c.instances()
            .iter()
            .any(|i| i.can_take_tasks() && c.tasks_on(&i.container_instance_arn).count() == 0)
            || c.instances().iter().any(|i| {
                i.can_take_tasks()
                    && c.tasks_on(&i.container_instance_arn).all(|t| {
                        t.service_name()
                            .and_then(|s| c.service(s))
                            .is_some_and(|s| s.scheduling_strategy == crate::model::SchedulingStrategy::Daemon)
                    })
            })
    });
    if empty_joined {
        for s in &snapshot.services {
            if s.scheduling_strategy != crate::model::SchedulingStrategy::Daemon {
                let _ = twin.force_new_deployment(&s.service_name).await;
            }
        }
    }
    twin.advance(duration);
    let final_score = score_of(&twin.snapshot(), policy);
    out.push(BaselineResult {
        name: "redeploy every service on a new instance (ecs-refarch-task-rebalancing)".into(),
        tasks_started: twin.stats().tasks_started,
        final_score,
        floor_violations: twin.stats().floor_violations,
        simulated_seconds: (twin.now() - start).num_seconds(),
        ours_to_reach: restarts_to_reach(ours, final_score),
    });
    out
}

/// The parameters of maginetv/ecs-task-balancer, as its README and code state them (docs/simulate.md).
pub mod partial {
    use std::time::Duration;

    /// It runs every 20 minutes.
    pub const EVERY: Duration = Duration::from_secs(20 * 60);
    /// It acts only while the sample coefficient of variation (n − 1) of the instances' task counts is above this.
    pub const CV_ABOVE: f64 = 0.25;
    /// It drains at most this many instances a run.
    pub const DRAINS_PER_RUN: usize = 2;
    /// The first drain lasts at most this long; each later one half as long as the one before.
    pub const FIRST_TIMEOUT: Duration = Duration::from_secs(45);
    /// While an instance drains, it looks every 30 s whether its count is down to the mean.
    pub const CHECK_EVERY: Duration = Duration::from_secs(30);
    /// It waits this long between two drains.
    pub const BETWEEN_DRAINS: Duration = Duration::from_secs(60);
}

/// One run of maginetv/ecs-task-balancer on the twin:
/// 1. every DRAINING instance of the cluster is set ACTIVE again, foreign drains included;
/// 2. while the sample CV of the ACTIVE instances' task counts (`runningTasksCount + pendingTasksCount`) is above
///    25 %, the fullest of them is set DRAINING, at most two a run;
/// 3. a drain ends (ACTIVE again) at its timeout (45 s, halved after each drain) or, looking every 30 s, once the
///    instance holds no more than the mean; 60 s pass between two drains.
async fn partial_drain(twin: &Twin) {
    use crate::ecs::{EcsApi, InstanceState};
    let draining: Vec<String> = twin.read(|s| {
        s.container_instances
            .iter()
            .filter(|i| i.status == InstanceStatus::Draining)
            .map(|i| i.container_instance_arn.clone())
            .collect()
    });
    for arn in draining {
        let _ = twin.set_instance_state(&arn, InstanceState::Active).await;
    }
    let count = |i: &crate::model::ContainerInstance| f64::from(i.running_tasks_count + i.pending_tasks_count);
    let mut timeout = partial::FIRST_TIMEOUT;
    for drain in 0..partial::DRAINS_PER_RUN {
        let now = twin.snapshot();
        if count_cv(&now) <= partial::CV_ABOVE {
            return;
        }
        let Some(fullest) = now
            .container_instances
            .iter()
            .filter(|i| i.status == InstanceStatus::Active)
            .rev() // ties: the first listed (`max_by` keeps the last of equals)
            .max_by(|a, b| count(a).total_cmp(&count(b)))
            .map(|i| i.container_instance_arn.clone())
        else {
            return;
        };
        if drain > 0 {
            twin.advance(partial::BETWEEN_DRAINS);
        }
        if twin
            .set_instance_state(&fullest, InstanceState::Draining)
            .await
            .is_err()
        {
            continue;
        }
        let mut waited = std::time::Duration::ZERO;
        while waited < timeout {
            let step = partial::CHECK_EVERY.min(timeout - waited);
            twin.advance(step);
            waited += step;
            let down_to_mean = twin.read(|s| {
                let counts: Vec<f64> = s.container_instances.iter().map(count).collect();
                let mean = counts.iter().sum::<f64>() / counts.len().max(1) as f64;
                s.container_instances
                    .iter()
                    .find(|i| i.container_instance_arn == fullest)
                    .is_some_and(|i| count(i) <= mean)
            });
            if down_to_mean {
                break;
            }
        }
        let _ = twin.set_instance_state(&fullest, InstanceState::Active).await;
        timeout /= 2;
    }
}

/// The comparison table: ecs-rebalancer's run and the baselines.
pub fn render_comparison(ours: &Report, baselines: &[BaselineResult]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<72} {:>8} {:>8} {:>8} {:>13}",
        "behaviour", "started", "score", "floor", "ours to reach"
    );
    let _ = writeln!(
        out,
        "{:<72} {:>8} {:>8.3} {:>8} {:>13}",
        "ecs-rebalancer (this policy)", ours.tasks_started, ours.score_after, ours.floor_violations, "-"
    );
    for b in baselines {
        let reach = b.ours_to_reach.map_or_else(|| "never".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "{:<72} {:>8} {:>8.3} {:>8} {:>13}",
            b.name, b.tasks_started, b.final_score, b.floor_violations, reach
        );
    }
    let _ = writeln!(out, "started: tasks the twin started (replacements, redeployed tasks, daemons after a drain); score: the policy's final score; floor: ticks below a service's healthy floor");
    let _ = writeln!(out, "ours to reach: the tasks ecs-rebalancer had started when its score first reached that behaviour's final score (the two at equal balance)");
    out
}

/// How long each baseline plays: six runs of the partial-drain tool.
pub const BASELINE_DURATION: std::time::Duration = std::time::Duration::from_secs(2 * 60 * 60);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceStatus, Protocol};
    use crate::scenarios::builder::{instance, service, ClusterBuilder};

    fn policy() -> Policy {
        let text =
            "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: t}\nspec:\n  clusters: [\"*\"]\n  \
                    metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  actions: [stop-tasks]\n  \
                    exclude: {services: [batch]}\n";
        crate::policy::load_str(std::path::Path::new("t.yaml"), text)
            .unwrap()
            .remove(0)
    }

    fn start() -> Snapshot {
        ClusterBuilder::new("c")
            .instance(instance("a"))
            .instance(instance("b"))
            .instance(instance("d").status(InstanceStatus::Draining))
            .service(service("web").port(Some(8080), 80, Protocol::Tcp).distinct_instance())
            .service(service("batch"))
            .tasks("web", "a", 1)
            .tasks("batch", "a", 1)
            .standalone_task("cron", "b", 128, 128)
            .snapshot()
    }

    /// One run of the partial-drain baseline: a foreign drain is set ACTIVE first; the fullest instance is drained and
    /// set ACTIVE again; a cluster whose CV is at or below 25 % is left alone.
    #[tokio::test]
    async fn the_partial_drain_baseline_plays_the_tool_as_documented() {
        let hot = ClusterBuilder::new("c")
            .instance(instance("hot"))
            .instance(instance("cold1"))
            .instance(instance("cold2"))
            .instance(instance("foreign").status(InstanceStatus::Draining))
            .service(service("web").spread("instanceId").deployment(50, 200))
            .tasks("web", "hot", 8)
            .snapshot();
        let twin = Twin::new(hot, TwinConfig::default());
        let t0 = twin.now();
        partial_drain(&twin).await;
        let s = twin.snapshot();
        assert!(
            s.container_instances.iter().all(|i| i.status == InstanceStatus::Active),
            "foreign drain reset too"
        );
        let hot_count = |s: &Snapshot| {
            s.container_instances
                .iter()
                .find(|i| i.container_instance_arn.ends_with("/hot"))
                .map(|i| i.running_tasks_count + i.pending_tasks_count)
        };
        assert!(hot_count(&s) < Some(8), "the fullest was drained: {:?}", hot_count(&s));
        assert!(twin.stats().tasks_started > 0);
        let took = (twin.now() - t0).num_seconds();
        assert!(
            took <= 45 + 60 + 23,
            "two drains at most: 45 s, 60 s apart, then 22.5 s; took {took} s"
        );

        let even = ClusterBuilder::new("c")
            .instance(instance("a"))
            .instance(instance("b"))
            .service(service("web").spread("instanceId"))
            .tasks("web", "a", 4)
            .tasks("web", "b", 3)
            .snapshot();
        let twin = Twin::new(even, TwinConfig::default());
        partial_drain(&twin).await;
        assert_eq!(
            twin.stats().tasks_started,
            0,
            "CV {:.3} is not above 25 %",
            count_cv(&twin.snapshot())
        );
    }

    /// The cost of reaching a score is read at the first cycle that observed it, or at none.
    #[test]
    fn restarts_to_reach_reads_the_first_cycle_at_or_below_the_score() {
        let (mut report, _) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(run(start(), &policy(), Options::default(), |_| {}));
        report.trajectory = [(0.7, 0), (0.5, 10), (0.3, 25), (0.3, 30), (0.4, 31)]
            .map(|(score, tasks_started)| Milestone { score, tasks_started })
            .to_vec();
        assert_eq!(restarts_to_reach(&report, 0.9), Some(0), "already there at the start");
        assert_eq!(restarts_to_reach(&report, 0.5), Some(10), "at equality");
        assert_eq!(restarts_to_reach(&report, 0.45), Some(25));
        assert_eq!(
            restarts_to_reach(&report, 0.3),
            Some(25),
            "the first cycle, not a later one"
        );
        assert_eq!(restarts_to_reach(&report, 0.29), None, "never that low");
    }

    #[test]
    fn an_unchanged_cluster_passes_the_audit() {
        let s = start();
        assert_eq!(audit(&s, &s, &policy()), Vec::<String>::new());
    }

    #[test]
    fn the_audit_finds_over_reservations_and_port_clashes() {
        let initial = start();
        let mut end = initial.clone();
        let web = end
            .tasks
            .iter()
            .find(|t| t.group.as_deref() == Some("service:web"))
            .unwrap()
            .clone();
        let mut twin = web.clone();
        twin.task_arn.push_str("-twin");
        end.tasks.push(twin);
        for r in &mut end.container_instances[0].remaining_resources {
            if r.name == "CPU" {
                r.integer_value = Some(-1);
            }
        }
        let found = audit(&initial, &end, &policy());
        assert!(found.iter().any(|f| f.ends_with("CPU over-reserved")), "{found:?}");
        assert!(
            found.iter().any(|f| f.contains("host port 8080 bound twice")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.contains("despite distinctInstance")),
            "{found:?}"
        );
    }

    #[test]
    fn the_audit_finds_moved_untouchables_and_undone_foreign_drains() {
        let initial = start();
        let mut end = initial.clone();
        let b_arn = end.container_instances[1].container_instance_arn.clone();
        for t in &mut end.tasks {
            if t.group.as_deref() == Some("service:batch") {
                t.container_instance_arn = Some(b_arn.clone());
            }
        }
        end.tasks
            .retain(|t| !t.group.as_deref().is_some_and(|g| g.starts_with("family:")));
        end.container_instances[2].status = InstanceStatus::Active;
        let found = audit(&initial, &end, &policy());
        assert_eq!(
            found.iter().filter(|f| f.starts_with("untouchable task")).count(),
            2,
            "the excluded service's task moved and the standalone task stopped: {found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with("foreign DRAINING instance")),
            "{found:?}"
        );
    }
}

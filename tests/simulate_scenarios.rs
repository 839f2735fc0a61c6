//! The controller against the twin, on whole scenarios: it converges where moves can reach the target, restarts few
//! tasks, and never breaks anything (the audit of the end state is empty, the twin counts no floor violation).

use std::path::Path;

use ecs_rebalancer::model::{InstanceStatus, Snapshot};
use ecs_rebalancer::policy::{self, Policy};
use ecs_rebalancer::scenarios;
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
use ecs_rebalancer::simulate::{self, Options, Report};
use ecs_rebalancer::twin::TwinConfig;

fn policy(extra: &str) -> Policy {
    let text = format!(
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {{name: sim}}\nspec:\n  clusters: [sim]\n  \
         metric: count\n  threshold: {{trigger: 0.2, target: 0.1}}\n  interval: 1m\n  \
         cooldown: {{instance: 1m, service: 1m, newInstance: 0s}}\n{extra}"
    );
    policy::load_str(Path::new("sim.yaml"), &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
}

fn run(snapshot: Snapshot, policy: &Policy) -> (Report, Snapshot) {
    run_with(snapshot, policy, TwinConfig::default(), |_| {})
}

/// [`run`] on a twin of `twin`'s configuration, calling `on_cycle` after each cycle.
fn run_with(
    snapshot: Snapshot,
    policy: &Policy,
    twin: TwinConfig,
    on_cycle: impl FnMut(&simulate::Progress<'_>),
) -> (Report, Snapshot) {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(simulate::run(
            snapshot,
            policy,
            Options {
                reachable: false,
                twin,
                ..Options::default()
            },
            on_cycle,
        ))
}

fn assert_safe(r: &Report) {
    assert!(r.violations.is_empty(), "audit: {:#?}", r.violations);
    assert_eq!(r.floor_violations, 0, "{r:#?}");
    assert_eq!(r.failed_actions, 0, "{r:#?}");
}

/// The fewest single-task moves that reach the target if tasks could go anywhere (no constraints, no strategies):
/// move one task from the most to the least loaded instance until the score is at or below the target.
fn greedy_moves(counts: &mut [f64], target: f64) -> u32 {
    let score = |c: &[f64]| {
        let n = c.len() as f64;
        let mean = c.iter().sum::<f64>() / n;
        let var = c.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        var.sqrt() / mean
    };
    let mut moves = 0;
    while score(counts) > target {
        let (hi, _) = counts.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        let (lo, _) = counts.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        counts[hi] -= 1.0;
        counts[lo] += 1.0;
        moves += 1;
    }
    moves
}

/// Six equal instances across three AZs, two of them new and empty after a scale-out; three spread services.
fn scale_out() -> ClusterBuilder {
    let mut b = ClusterBuilder::new("sim");
    for (id, az) in [
        ("a1", "a"),
        ("b1", "b"),
        ("c1", "c"),
        ("a2", "a"),
        ("b2", "b"),
        ("c2", "c"),
    ] {
        b = b.instance(instance(id).az(az).cpu(4096).memory(16384));
    }
    b = b
        .service(
            service("web")
                .spread("attribute:ecs.availability-zone")
                .spread("instanceId")
                .deployment(50, 200),
        )
        .service(service("api").deployment(50, 200))
        .service(service("jobs").spread("instanceId").deployment(50, 200));
    for id in ["a1", "b1", "c1"] {
        b = b.tasks("web", id, 4).tasks("api", id, 2).tasks("jobs", id, 2);
    }
    b
}

#[test]
fn scale_out_converges_with_few_restarts() {
    let (r, _) = run(
        scale_out().snapshot(),
        &policy("  budgets: {maxUnavailable: 10, perHour: 200, perService: 50%}\n"),
    );
    assert!(r.converged, "{r:#?}");
    assert!(r.score_after <= 0.1 + 1e-9);
    assert_safe(&r);
    // 24 tasks on 3 of 6 equal instances: 8/8/8/0/0/0.
    let greedy = greedy_moves(&mut [8.0, 8.0, 8.0, 0.0, 0.0, 0.0], 0.1);
    assert!(
        f64::from(r.tasks_restarted) <= 1.25 * f64::from(greedy),
        "restarted {} tasks, a constraint-free greedy needs {greedy}",
        r.tasks_restarted
    );
}

#[test]
fn the_demo_converges_safely() {
    let (r, _) = run(scenarios::demo_snapshot(), &scenarios::demo_policy());
    assert!(r.converged, "{r:#?}");
    assert_safe(&r);
    assert!(
        r.score_after < r.score_before / 4.0,
        "{} → {}",
        r.score_before,
        r.score_after
    );
}

#[test]
fn a_singleton_at_100_percent_is_redeployed_never_dropped() {
    let b = ClusterBuilder::new("sim")
        .instance(instance("hot").cpu(2048).memory(8192))
        .instance(instance("cold").cpu(2048).memory(8192))
        .service(service("single").cpu(1024).memory(2048).deployment(100, 200))
        .service(service("web").deployment(50, 200))
        .tasks("single", "hot", 1)
        .tasks("web", "hot", 3)
        .tasks("web", "cold", 1);
    let text =
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: sim}\nspec:\n  clusters: [sim]\n  \
                metric: mem-unreserved\n  threshold: {trigger: 0.2, target: 0.1}\n  interval: 1m\n  \
                actions: [stop-tasks, redeploy-services]\n  cooldown: {instance: 1m, service: 1m, newInstance: 0s}\n";
    let p = policy::load_str(Path::new("sim.yaml"), text).unwrap().remove(0);
    let (r, _) = run(b.snapshot(), &p);
    assert_safe(&r);
    assert_eq!(r.actions_by_kind.get("redeploy-service"), Some(&1), "{r:#?}");
    assert!(r.actions_by_kind.get("stop-task").is_none_or(|n| *n <= 2), "{r:#?}");
}

#[test]
fn a_foreign_draining_instance_is_never_set_active_and_nothing_lands_on_it() {
    let mut snap = scale_out().tasks("web", "a2", 2).snapshot();
    let foreign = snap
        .container_instances
        .iter_mut()
        .find(|i| i.ec2_instance_id.as_deref() == Some("i-a2"))
        .unwrap();
    foreign.status = InstanceStatus::Draining;
    let arn = foreign.container_instance_arn.clone();
    let (r, end) = run(
        snap,
        &policy("  budgets: {maxUnavailable: 10, perHour: 200, perService: 50%}\n"),
    );
    assert_safe(&r);
    let after = end
        .container_instances
        .iter()
        .find(|i| i.container_instance_arn == arn)
        .unwrap();
    assert_eq!(after.status, InstanceStatus::Draining);
}

#[test]
fn untouchables_stay_where_they_are() {
    let snap = scale_out()
        .service(service("batch-etl").spread("instanceId").deployment(0, 200))
        .tasks("batch-etl", "a1", 3)
        .standalone_task("report", "b1", 256, 512)
        .service(service("agent").daemon())
        .tasks("agent", "a1", 1)
        .tasks("agent", "b1", 1)
        .tasks("agent", "c1", 1)
        .snapshot();
    let extra =
        "  budgets: {maxUnavailable: 10, perHour: 200, perService: 50%}\n  exclude: {services: [\"batch-*\"]}\n";
    let (r, _) = run(snap, &policy(extra));
    assert_safe(&r);
    assert!(r.tasks_restarted > 0);
}

#[test]
fn binpack_services_are_left_where_a_stop_would_bring_them_back() {
    let mut b = ClusterBuilder::new("sim");
    for id in ["hot", "cold1", "cold2"] {
        b = b.instance(instance(id).cpu(4096).memory(16384));
    }
    let b = b
        .service(service("cache").memory(2048).binpack("memory").deployment(0, 200))
        .tasks("cache", "hot", 5);
    let (r, _) = run(b.snapshot(), &policy(""));
    assert_safe(&r);
    assert!(!r.converged);
    assert_eq!(
        r.tasks_restarted, 0,
        "every binpack replacement would land back on the hot instance"
    );
    assert!(r.outcome.contains("lands-on-source"), "{}", r.outcome);
}

#[test]
fn a_disconnected_agent_receives_nothing_and_loses_nothing() {
    let mut snap = scale_out().snapshot();
    let c2 = snap
        .container_instances
        .iter_mut()
        .find(|i| i.ec2_instance_id.as_deref() == Some("i-c2"))
        .unwrap();
    c2.agent_connected = false;
    let arn = c2.container_instance_arn.clone();
    let (r, end) = run(
        snap,
        &policy("  budgets: {maxUnavailable: 10, perHour: 200, perService: 50%}\n"),
    );
    assert_safe(&r);
    assert!(!end
        .tasks
        .iter()
        .any(|t| t.container_instance_arn.as_deref() == Some(arn.as_str())));
}

#[test]
fn simulate_command_writes_a_summary_and_the_final_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let snap_path = dir.path().join("start.json");
    scale_out().snapshot().save(&snap_path).unwrap();
    let policy_path = dir.path().join("p.yaml");
    std::fs::write(
        &policy_path,
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: sim}\nspec:\n  clusters: [sim]\n  \
         metric: count\n  threshold: {trigger: 0.2, target: 0.1}\n  cooldown: {instance: 1m, service: 1m}\n  \
         budgets: {maxUnavailable: 10, perHour: 200, perService: 50%}\n",
    )
    .unwrap();
    let end_path = dir.path().join("end.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"))
        .args(["simulate", "--snapshot"])
        .arg(&snap_path)
        .arg("--policy")
        .arg(&policy_path)
        .arg("--final-snapshot")
        .arg(&end_path)
        .args(["-o", "json", "--seed", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["converged"], true, "{v:#}");
    assert_eq!(v["simulatedAsEnforced"], true, "the policy is dry-run");
    assert_eq!(v["floorViolations"], 0);
    assert!(v["actionsByKind"]["stop-task"].as_u64().unwrap() > 0);
    let end = Snapshot::load(&end_path).unwrap();
    assert_eq!(end.cluster, "sim");
}

/// 300 instances after a scale-out (240 full, 60 empty; 12 services, 5,760 tasks, two of each on every old
/// instance). Each service is on every old instance, so a stop's replacement ties only with the new instances (and
/// its source): the odds are good, and the controller must reach the target and break nothing. It restarts more
/// than a constraint-free greedy would, within 1.5×: ECS's spread is per service, so a replacement goes to a new
/// instance with the fewest tasks *of its service*, not always to the emptiest one.
#[test]
fn a_300_instance_scale_out_reaches_the_target_within_1_5x_of_a_greedy_and_breaks_nothing() {
    let snapshot = scenarios::scale_out("sim", 240, 60, 12, 2, 1);
    let (r, end) = run(
        snapshot,
        &policy("  budgets: {maxUnavailable: 50, perHour: 5000, perService: 25%}\n"),
    );
    assert_safe(&r);
    assert_eq!(end.container_instances.len(), 300);
    assert!(r.converged, "{r:#?}");
    let mut counts: Vec<f64> = [24.0; 240].iter().chain([0.0; 60].iter()).copied().collect();
    let greedy = greedy_moves(&mut counts, r.score_after);
    assert!(
        f64::from(r.tasks_restarted) <= 1.5 * f64::from(greedy),
        "restarted {}, greedy {greedy}",
        r.tasks_restarted
    );
}

/// `simulate` stops at a fixed point rather than running out its cycles: the README's cluster has 15 counted tasks
/// on 4 instances, so no move gets below 0.115, above the policy's target of 0.10. It says where it stopped, the
/// target, what is reachable from there, and why, and it reports the reachable balance from the start.
#[test]
fn simulate_stops_at_a_fixed_point_and_says_where_and_why() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"))
        .current_dir(&fixtures)
        .args([
            "simulate",
            "--snapshot",
            "snapshot-hot.json",
            "--policy",
            "policy-hot.yaml",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = v["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("stuck at 0.12 (target 0.10, reachable from here 0.12): "),
        "{outcome}"
    );
    assert!(
        v["cycles"].as_u64().unwrap() < 50,
        "it stopped at the fixed point: {v:#}"
    );
    assert_eq!(v["converged"], false);
    let reachable = &v["reachable"];
    assert!(
        (reachable["score"].as_f64().unwrap() - 0.115).abs() < 0.01,
        "{reachable}"
    );
    assert!(
        reachable["cause"].as_str().unwrap().contains("tasks are whole"),
        "{reachable}"
    );
    assert!((v["reachableFromHere"].as_f64().unwrap() - 0.115).abs() < 0.01, "{v:#}");
    assert_eq!(v["floorViolations"], 0);
    assert_eq!(v["violations"].as_array().unwrap().len(), 0);
}

#[test]
fn the_target_is_called_out_of_reach_only_when_neither_reference_reaches_it() {
    // Both references are local searches: the one from where the run stopped may find more than the one from the
    // start. The summary must not say "out of reach" in the line after "reachable from here" said otherwise.
    let (mut r, _) = run(
        scenarios::mixed_sizes("sim", 4, 2, 4),
        &policy("  actions: [stop-tasks]\n"),
    );
    r.reachable = Some(ecs_rebalancer::plan::reachable::Reachable {
        score: r.target + 0.05,
        restarts: 3,
        moves: Default::default(),
        complete: true,
        cause: Some("a cause".into()),
    });
    r.reachable_from_here = Some(r.target + 0.01);
    assert!(simulate::render_report(&r).contains("out of reach: a cause"));
    r.reachable_from_here = Some(r.target);
    assert!(!simulate::render_report(&r).contains("out of reach"));
}

/// Runs a drains-only policy on `b` and checks that one drain was made, safely, and that instance `hot` is ACTIVE
/// at the end; returns the groups of the tasks still on it.
fn drained_once_and_left_on_hot(b: ClusterBuilder) -> Vec<String> {
    let (r, end) = run(
        b.snapshot(),
        &policy(
            "  actions: [drain-instances]\n  budgets: {maxUnavailable: 10, perHour: 200, perService: 1, \
             concurrentDrains: 1}\n",
        ),
    );
    assert_safe(&r);
    assert_eq!(r.actions_by_kind.get("drain-instance"), Some(&1), "{r:#?}");
    let cluster = ecs_rebalancer::model::Cluster::new(end).unwrap();
    let hot = cluster
        .instances()
        .iter()
        .find(|i| i.ec2_instance_id.as_deref() == Some("i-hot"))
        .unwrap();
    assert_eq!(hot.status, InstanceStatus::Active, "set ACTIVE again");
    cluster
        .tasks_on(&hot.container_instance_arn)
        .filter(|t| t.desired_status != ecs_rebalancer::model::TaskStatus::Stopped)
        .filter_map(|t| t.group.clone())
        .collect()
}

/// A partial drain: ECS moves the tasks it can, and the instance is set ACTIVE again as soon as they are gone,
/// with the task of a service at 100 %/100 % and a standalone task still on it. Before drains named their tasks,
/// such a drain waited for the deadline and was recorded failed.
#[test]
fn a_partial_drain_sets_the_instance_active_once_its_movable_tasks_are_gone() {
    let b = ClusterBuilder::new("sim")
        .instance(instance("hot").cpu(4096).memory(16384))
        .instance(instance("cold1").cpu(4096).memory(16384))
        .instance(instance("cold2").cpu(4096).memory(16384))
        .service(service("a").memory(1024).deployment(100, 200))
        .service(service("b").memory(1024).deployment(100, 200))
        .service(service("pinned").memory(1024).deployment(100, 100))
        .tasks("a", "hot", 2)
        .tasks("b", "hot", 2)
        .tasks("pinned", "hot", 1)
        .standalone_task("report", "hot", 256, 512);
    let left = drained_once_and_left_on_hot(b);
    let left: Vec<&str> = left.iter().map(String::as_str).collect();
    assert!(left.contains(&"service:pinned"), "{left:?}");
    assert!(left.iter().any(|g| g.starts_with("family:")), "{left:?}");
    assert!(!left.contains(&"service:a") && !left.contains(&"service:b"), "{left:?}");
}

#[test]
fn a_drain_of_services_without_room_above_desired_waits_for_their_replacements_before_setting_the_instance_active() {
    // At maximumPercent 100 ECS stops each old task first and starts its replacement only once it has stopped. Had
    // the instance been set ACTIVE as soon as its last task was told to stop, that task's replacement would tie
    // for the emptied instance (no task of its service there) and could land right back on it.
    let b = ClusterBuilder::new("sim")
        .instance(instance("hot"))
        .instance(instance("cold1"))
        .instance(instance("cold2"))
        .service(service("a").spread("instanceId").deployment(50, 100))
        .service(service("b").spread("instanceId").deployment(50, 100))
        .tasks("a", "hot", 2)
        .tasks("a", "cold2", 1)
        .tasks("b", "hot", 2)
        .tasks("b", "cold2", 1);
    let back = drained_once_and_left_on_hot(b);
    assert!(
        back.is_empty(),
        "replacements placed back on the drained instance: {back:?}"
    );
}

/// Each cycle's line (`demo`, `simulate -o table`) says what the cycle planned, by kind: `planned stop-task ×3`, or
/// `planned nothing`.
#[test]
fn each_cycle_line_says_what_the_cycle_planned() {
    let mut lines = Vec::new();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(simulate::run(
            scale_out().snapshot(),
            &policy(""),
            Options {
                reachable: false,
                ..Options::default()
            },
            |p| {
                let mut kinds = std::collections::BTreeMap::new();
                for a in &p.report.plan.actions {
                    *kinds.entry(a.mv.kind().to_string()).or_insert(0) += 1;
                }
                let planned: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                let expected = match planned.is_empty() {
                    true => "planned nothing ".to_owned(),
                    false => format!("planned {} ", planned.join(", ")),
                };
                lines.push((simulate::render_cycle(p, false), expected));
            },
        ));
    assert!(
        lines.iter().any(|(_, e)| e != "planned nothing "),
        "some cycle planned moves"
    );
    for (line, expected) in &lines {
        assert!(line.contains(expected), "{line:?} says {expected:?}");
    }
}

/// The twin skips scheduler passes that change nothing (issue 17): a run with the skip and one ticking through every
/// pass are the same, event for event: every cycle's report (what was planned, sent and settled, and when), the
/// summary, and the end state. On the demo (a scale-out with a replacement, protected and pinned tasks, a daemon,
/// five-minute cycles) and on `strict-floors` (every service at 100 %, redeploys and drains).
#[test]
fn skipping_idle_passes_changes_nothing_event_for_event() {
    let runs = |snapshot: Snapshot, policy: &Policy, skip_idle: bool| {
        let mut events = Vec::new();
        let twin = TwinConfig {
            skip_idle,
            ..TwinConfig::default()
        };
        let (report, end) = run_with(snapshot, policy, twin, |p| {
            events.push(serde_json::to_string(&(p.cycle, p.elapsed_seconds, p.report)).unwrap());
        });
        (events, serde_json::to_value(&report).unwrap(), end)
    };
    let strict = scenarios::strict_floors("sim", 12, 4, 6, 2, 1);
    let mut policy = scenarios::demo_policy();
    policy.clusters = vec![ecs_rebalancer::policy::Pattern::new("*").unwrap()];
    for (name, snapshot, policy) in [
        ("demo", scenarios::demo_snapshot(), scenarios::demo_policy()),
        ("strict-floors", strict, policy),
    ] {
        let (skipping, report, end) = runs(snapshot.clone(), &policy, true);
        let (ticking, reference, reference_end) = runs(snapshot, &policy, false);
        assert!(skipping.len() > 3, "{name}: a run worth comparing");
        assert_eq!(skipping.len(), ticking.len(), "{name}: as many cycles");
        for (k, (a, b)) in skipping.iter().zip(&ticking).enumerate() {
            assert_eq!(a, b, "{name}: cycle {}", k + 1);
        }
        assert_eq!(report, reference, "{name}: the summary");
        assert!(end == reference_end, "{name}: the end state");
    }
}

/// Against the two behaviours used in the field, compared at equal balance: by the time the controller's score is
/// as low as the one each baseline ends at, it has restarted fewer tasks than that baseline did (issue 13). On the
/// demo and on a 12-instance scale-out.
#[test]
fn at_equal_balance_the_controller_restarts_fewer_tasks_than_either_baseline() {
    // docs/benchmarks.md's policy for the generated shapes.
    let shared = policy(
        "  actions: [stop-tasks, redeploy-services, drain-instances]\n  \
         budgets: {maxUnavailable: 50, perHour: 2000, perService: 25%, concurrentDrains: 2}\n",
    );
    for (name, snapshot, policy) in [
        ("demo", scenarios::demo_snapshot(), scenarios::demo_policy()),
        ("scale-out-12", scenarios::scale_out("sim", 8, 4, 12, 2, 2), shared),
    ] {
        let (ours, _) = run(snapshot.clone(), &policy);
        assert_safe(&ours);
        let options = Options {
            reachable: false,
            ..Options::default()
        };
        let baselines = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(simulate::baselines(
                &snapshot,
                &policy,
                options,
                simulate::BASELINE_DURATION,
                &ours,
            ));
        assert_eq!(baselines.len(), 2, "{name}");
        for b in &baselines {
            let reach = b.ours_to_reach.unwrap_or_else(|| {
                panic!(
                    "{name}: the controller never got down to {}'s {}",
                    b.name, b.final_score
                )
            });
            assert!(
                reach < b.tasks_started,
                "{name}: {reach} tasks to reach {:.3}, {} started {}",
                b.final_score,
                b.name,
                b.tasks_started
            );
            assert!(reach <= ours.tasks_started, "{name}: within the run");
        }
    }
}

#[test]
fn no_set_of_allowed_actions_leaves_a_cluster_worse_than_it_started() {
    // Every scenario shape under every policy that allows drains: the controller may stop above the target, but
    // it never ends above where it started (a drain valued by a refill that no allowed move could make did).
    let shapes = [
        scenarios::scale_out("sim", 8, 4, 12, 2, 2),
        scenarios::mixed_sizes("sim", 12, 6, 12),
        scenarios::strict_floors("sim", 12, 4, 6, 2, 2),
        scenarios::constrained("sim", 8, 4),
    ];
    for actions in [
        "drain-instances",
        "stop-tasks, drain-instances",
        "redeploy-services, drain-instances",
    ] {
        let policy = policy(&format!(
            "  actions: [{actions}]\n  budgets: {{maxUnavailable: 50, perHour: 2000, perService: 25%, concurrentDrains: 2}}\n"
        ));
        for shape in &shapes {
            let (r, _) = run(shape.clone(), &policy);
            assert_safe(&r);
            assert!(
                r.score_after <= r.score_before + 1e-9,
                "[{actions}] on {} instances: {:.3} → {:.3}, {:?}",
                shape.container_instances.len(),
                r.score_before,
                r.score_after,
                r.actions_by_kind
            );
        }
    }
}

#[test]
fn every_generated_scenario_describes_the_definition_of_every_task() {
    // `twin serve` answers DescribeTaskDefinition from the snapshot, and the controller's observation is whole or
    // nothing: a scenario missing one definition (the demo's standalone `report` task did) cannot be rehearsed.
    for snap in [
        scenarios::demo_snapshot(),
        scenarios::scale_out("sim", 8, 4, 12, 2, 2),
        scenarios::mixed_sizes("sim", 12, 6, 12),
        scenarios::strict_floors("sim", 12, 4, 6, 2, 2),
        scenarios::constrained("sim", 8, 4),
        scenarios::sparse("sim", 40, 10, 20),
    ] {
        for t in &snap.tasks {
            assert!(
                snap.task_definitions
                    .iter()
                    .any(|d| d.task_definition_arn == t.task_definition_arn),
                "{}: task {} names {}, which the snapshot does not describe",
                snap.cluster,
                t.task_arn,
                t.task_definition_arn
            );
        }
    }
}

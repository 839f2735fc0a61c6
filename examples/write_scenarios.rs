//! Writes the scenario snapshots used for the `simulate --compare-baselines` figures in docs/benchmarks.md:
//!
//! `cargo run --release --example write_scenarios -- DIR` then, for each file,
//! `ecs-rebalancer simulate --snapshot DIR/NAME.json --policy DIR/policy.yaml --any-cluster --compare-baselines`.
//!
//! `write_scenarios DIR --large N [--tasks T]` writes only `DIR/large-N.json`, [`Generated::scale_out`] at `N`
//! instances (at 5,000: 100,000 tasks, 2,000 services, about 80 MB; `--tasks` for another count), and the two
//! policies of the rehearsal figures: `DIR/rehearsal.yaml` (10-minute cycles, 50 restarts an hour) and
//! `DIR/idle.yaml` (one the cluster satisfies).

use std::path::PathBuf;

use ecs_rebalancer::scenarios::{
    constrained, demo_snapshot, mixed_sizes, scale_out, sparse, strict_floors, Generated, DEMO_POLICY,
};

/// A policy for every cluster on the `count` metric, all three actions, with its own threshold, interval, budgets
/// and cooldown (for instances and services alike).
fn policy(name: &str, threshold: &str, interval: &str, budgets: &str, cooldown: &str) -> String {
    format!(
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {{name: {name}}}\nspec:\n  \
         clusters: [\"*\"]\n  metric: count\n  threshold: {threshold}\n  \
         actions: [stop-tasks, redeploy-services, drain-instances]\n  interval: {interval}\n  \
         budgets: {budgets}\n  cooldown: {{instance: {cooldown}, service: {cooldown}}}\n"
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().expect("usage: write_scenarios DIR [--large N]"));
    std::fs::create_dir_all(&dir).expect("create DIR");
    let value = |flag: &str| {
        let v = args.iter().position(|a| a == flag).and_then(|k| args.get(k + 1))?;
        Some(v.parse::<usize>().unwrap_or_else(|_| panic!("{flag}: a number")))
    };
    if let Some(n) = value("--large") {
        let mut shape = Generated::scale_out(n);
        shape.tasks = value("--tasks").unwrap_or(shape.tasks);
        let snap = shape.build().into_snapshot();
        snap.save(&dir.join(format!("large-{n}.json"))).expect("write snapshot");
        // A cycle every 10 minutes (a planning cycle costs seconds of CPU at this size), and an hourly budget that
        // lets it act one or two cycles an hour, as in production. In between, the controller looks again every
        // 30 s while its moves are in flight, so 100 cycles cover about 12 simulated hours.
        let rehearsal = policy(
            "rehearsal",
            "{trigger: 0.2, target: 0.1}",
            "10m",
            "{maxUnavailable: 50, perHour: 50, perService: 25%, concurrentDrains: 2}",
            "5m",
        );
        // One the cluster satisfies: every cycle has nothing to do.
        let idle = policy("idle", "{trigger: 5.0, target: 4.0}", "5m", "{}", "5m");
        std::fs::write(dir.join("rehearsal.yaml"), rehearsal).expect("write the rehearsal policy");
        std::fs::write(dir.join("idle.yaml"), idle).expect("write the idle policy");
        return;
    }
    let scenarios = [
        ("demo", demo_snapshot()),
        ("scale-out-12", scale_out("scale-out-12", 8, 4, 12, 2, 2)),
        ("scale-out-500", scale_out("scale-out-500", 400, 100, 60, 1, 2)),
        (
            "scale-out-500-dense",
            scale_out("scale-out-500-dense", 400, 100, 12, 2, 1),
        ),
        ("mixed-sizes", mixed_sizes("mixed-sizes", 12, 6, 12)),
        ("strict-floors", strict_floors("strict-floors", 24, 8, 12, 2, 2)),
        ("constrained", constrained("constrained", 16, 8)),
        ("sparse-500", sparse("sparse-500", 400, 100, 200)),
    ];
    for (name, snap) in scenarios {
        snap.save(&dir.join(format!("{name}.json"))).expect("write snapshot");
    }
    std::fs::write(dir.join("demo-policy.yaml"), DEMO_POLICY).expect("write the demo policy");
    let scenarios = policy(
        "scenarios",
        "{trigger: 0.2, target: 0.1}",
        "1m",
        "{maxUnavailable: 50, perHour: 2000, perService: 25%, concurrentDrains: 2}",
        "1m",
    );
    std::fs::write(dir.join("policy.yaml"), scenarios).expect("write policy");
}

//! Writes the scenario snapshots used for the `simulate --compare-baselines` figures in docs/benchmarks.md:
//!
//! `cargo run --release --example write_scenarios -- DIR` then, for each file,
//! `ecs-rebalancer simulate --snapshot DIR/NAME.json --policy DIR/policy.yaml --any-cluster --compare-baselines`.

use std::path::PathBuf;

use ecs_rebalancer::scenarios::{
    constrained, demo_snapshot, mixed_sizes, scale_out, sparse, strict_floors, DEMO_POLICY,
};

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: write_scenarios DIR"));
    std::fs::create_dir_all(&dir).expect("create DIR");
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
    std::fs::write(
        dir.join("policy.yaml"),
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: scenarios}\nspec:\n  clusters: [\"*\"]\n  \
         metric: count\n  threshold: {trigger: 0.2, target: 0.1}\n  actions: [stop-tasks, redeploy-services, drain-instances]\n  \
         interval: 1m\n  budgets: {maxUnavailable: 50, perHour: 2000, perService: 25%, concurrentDrains: 2}\n  \
         cooldown: {instance: 1m, service: 1m}\n",
    )
    .expect("write policy");
}

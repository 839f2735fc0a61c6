//! Writes the scenario snapshots used for the `simulate --compare-baselines` figures in docs/benchmarks.md:
//!
//! `cargo run --release --example write_scenarios -- DIR` then, for each file,
//! `ecs-rebalancer simulate --snapshot DIR/NAME.json --policy DIR/policy.yaml --any-cluster --compare-baselines`.

use std::path::PathBuf;

use ecs_rebalancer::testing::{instance, service, ClusterBuilder};

/// `old` full instances and `new` empty ones across three AZs, and `services` services (a third each: AZ-then-
/// instance spread, instance spread, the ECS default) with `per_old` tasks on every `every`-th old instance.
fn scale_out(
    name: &str,
    old: usize,
    new: usize,
    services: usize,
    per_old: usize,
    every: usize,
) -> ecs_rebalancer::model::Snapshot {
    let azs = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    let mut b = ClusterBuilder::new(name);
    for i in 0..old + new {
        let registered = if i < old {
            "2026-11-01T08:00:00Z"
        } else {
            "2026-11-28T09:00:00Z"
        };
        b = b.instance(
            instance(&format!("{i:04}"))
                .cpu(8192)
                .memory(32768)
                .az(azs[i % 3])
                .registered_at(registered),
        );
    }
    for s in 0..services {
        let svc = service(&format!("svc-{s:03}")).cpu(128).memory(256).deployment(50, 200);
        b = b.service(match s % 3 {
            0 => svc.spread("attribute:ecs.availability-zone").spread("instanceId"),
            1 => svc.spread("instanceId"),
            _ => svc,
        });
    }
    for i in 0..old {
        for s in 0..services {
            if (i + s) % every == 0 {
                b = b.tasks(&format!("svc-{s:03}"), &format!("{i:04}"), per_old);
            }
        }
    }
    let mut snap = b.snapshot();
    snap.captured_at = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .ok()
        .map(|t| t.to_utc());
    snap
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: write_scenarios DIR"));
    std::fs::create_dir_all(&dir).expect("create DIR");
    let scenarios = [
        ("scale-out-12", scale_out("scale-out-12", 8, 4, 12, 2, 2)),
        ("scale-out-500", scale_out("scale-out-500", 400, 100, 60, 1, 2)),
        (
            "scale-out-500-dense",
            scale_out("scale-out-500-dense", 400, 100, 12, 2, 1),
        ),
    ];
    for (name, snap) in scenarios {
        snap.save(&dir.join(format!("{name}.json"))).expect("write snapshot");
    }
    std::fs::write(
        dir.join("policy.yaml"),
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: scenarios}\nspec:\n  clusters: [\"*\"]\n  \
         metric: count\n  threshold: {trigger: 0.2, target: 0.1}\n  actions: [stop-tasks, redeploy-services, drain-instances]\n  \
         interval: 1m\n  budgets: {perCycle: 50, perHour: 2000, perService: 25%, concurrentDrains: 2}\n  \
         cooldown: {instance: 1m, service: 1m}\n",
    )
    .expect("write policy");
}

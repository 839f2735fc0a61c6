//! The twin beside the planner (issue 17): one scheduler pass with a burst to schedule (50 tasks stopped, their
//! replacements to place), one idle pass, and one controller cycle with nothing to do (observe the twin, settle,
//! plan a balanced cluster), on the planner bench's cluster of 5,000 instances, 100,000 tasks and 2,000 services.
//!
//! `cargo bench --bench twin`. Figures, and their ratio to `plan`'s cycle, are recorded in docs/benchmarks.md.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

use ecs_rebalancer::ecs::EcsApi as _;
use ecs_rebalancer::ledger::memory::MemoryLedger;
use ecs_rebalancer::policy;
use ecs_rebalancer::reconcile::Controller;
use ecs_rebalancer::scenarios::generated;
use ecs_rebalancer::twin::{Twin, TwinConfig};

const TICK: Duration = Duration::from_secs(10);

fn bench(c: &mut Criterion) {
    let snapshot = generated(5_000, 2_000, 100_000).into_snapshot();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Ticking every pass: what one pass costs, idle or not.
    let config = TwinConfig {
        skip_idle: false,
        ..TwinConfig::default()
    };
    let settled = || {
        let twin = Twin::new(snapshot.clone(), config);
        twin.advance(TICK);
        twin
    };
    // A policy under which the generated cluster is balanced: the cycle observes, settles and plans, and sends nothing.
    let policy = policy::load_str(
        Path::new("bench.yaml"),
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: bench}\nspec:\n  clusters: [generated]\n  \
         metric: count\n  threshold: {trigger: 5.0, target: 4.0}\n",
    )
    .unwrap()
    .remove(0);

    let mut group = c.benchmark_group("twin");
    group.sample_size(10).measurement_time(Duration::from_secs(30));
    group.bench_function("one pass scheduling a burst (50 tasks stopped, 5000 instances)", |b| {
        b.iter_batched(
            || {
                let twin = settled();
                let tasks: Vec<String> =
                    twin.read(|s| s.tasks.iter().step_by(2_000).map(|t| t.task_arn.clone()).collect());
                rt.block_on(async {
                    for t in &tasks {
                        twin.stop_task(t, "bench").await.unwrap();
                    }
                });
                twin
            },
            |twin| {
                twin.advance(TICK);
                black_box(twin)
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("one idle pass (5000 instances)", |b| {
        let twin = settled();
        b.iter(|| twin.advance(TICK));
    });
    group.bench_function("one controller cycle with nothing to do (5000 instances)", |b| {
        let twin = settled();
        let ledger = MemoryLedger::new();
        let mut controller = Controller::new(&twin, &ledger, policy.clone(), "generated").enforce_always();
        b.iter(|| black_box(rt.block_on(controller.cycle(twin.now())).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

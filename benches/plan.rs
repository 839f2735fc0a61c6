//! One planning cycle on a generated cluster of 5,000 instances, 100,000 tasks and 2,000 services, and the time to
//! parse the same cluster's snapshot file, for the ratio (issue: planner).
//!
//! `cargo bench --bench plan`. Figures are recorded in docs/benchmarks.md.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

use ecs_rebalancer::model::{Cluster, Snapshot};
use ecs_rebalancer::plan::{self, Episode, LedgerView};
use ecs_rebalancer::policy;
use ecs_rebalancer::scenarios::generated;

fn bench(c: &mut Criterion) {
    let cluster = generated(5_000, 2_000, 100_000);
    let json = serde_json::to_vec(cluster.snapshot()).unwrap();
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let policy = policy::load_str(
        Path::new("bench.yaml"),
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: bench}\nspec:\n  clusters: [generated]\n  \
         metric: count\n  threshold: {trigger: 0.01, target: 0.0}\n  actions: [stop-tasks, redeploy-services, drain-instances]\n  \
         budgets: {maxUnavailable: 50, perHour: 500, perService: 1, concurrentDrains: 1}\n",
    )
    .unwrap()
    .remove(0);

    let mut group = c.benchmark_group("plan");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("parse snapshot (5000 instances, 100000 tasks)", |b| {
        b.iter(|| black_box(Cluster::new(Snapshot::from_slice(Path::new("s.json"), &json).unwrap()).unwrap()));
    });
    group.bench_function("one cycle (5000 instances, 100000 tasks, 2000 services)", |b| {
        b.iter(|| {
            black_box(plan::plan(
                &cluster,
                &policy,
                &LedgerView::default(),
                now,
                Episode::default(),
            ))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

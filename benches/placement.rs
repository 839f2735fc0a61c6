//! Placement engine speed on a generated cluster of 5,000 instances and 100,000 tasks (issue: placement engine).
//!
//! `cargo bench --bench placement`. Figures are recorded in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use ecs_rebalancer::model::{Cluster, TaskIdx};
use ecs_rebalancer::placement::{Overlay, PlacementIndex, TaskRequest};
use ecs_rebalancer::scenarios::generated;

const INSTANCES: usize = 5_000;
const SERVICES: usize = 1_000;
const TASKS: usize = 100_000;

/// Every live service task with the request for its service: what the planner asks once per cycle.
fn requests<'c>(index: &PlacementIndex<'c>, cluster: &'c Cluster) -> Vec<(TaskIdx, TaskRequest)> {
    let mut out = Vec::new();
    for svc in cluster.services() {
        let request = index
            .request_for_service(svc)
            .expect("generated services are predictable");
        for task in cluster.tasks_of(&svc.service_name) {
            out.push((cluster.task_index(&task.task_arn).unwrap(), request.clone()));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let cluster = generated(INSTANCES, SERVICES, TASKS);
    assert_eq!(cluster.instances().len(), INSTANCES);
    assert_eq!(cluster.tasks().len(), TASKS);

    let mut group = c.benchmark_group("placement");
    group.bench_function("index 5000 instances, 100000 tasks", |b| {
        b.iter(|| black_box(PlacementIndex::new(&cluster)));
    });

    let index = PlacementIndex::new(&cluster);
    let work = requests(&index, &cluster);
    // One replacement: the first task of a spread service (AZ then instance), with its task pretended stopped.
    let (task, request) = &work[0];
    let mut overlay = Overlay::new();
    overlay.stop(&cluster, *task).unwrap();
    group.bench_function("one task, candidates", |b| {
        b.iter(|| black_box(index.candidates(request, &overlay)));
    });
    group.bench_function("one task, with reasons", |b| {
        b.iter(|| black_box(index.place(request, &overlay)));
    });

    group.sample_size(10).measurement_time(Duration::from_secs(60));
    group.bench_function("re-place every task once (100000)", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for (task, request) in &work {
                let mut overlay = Overlay::new();
                overlay.stop(&cluster, *task).unwrap();
                found += index.candidates(request, &overlay).candidates.len();
            }
            black_box(found)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

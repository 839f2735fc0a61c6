//! One planning cycle on a generated 5,000-instance, 100,000-task, 2,000-service cluster, end to end from a
//! snapshot file, with timings. Run under `/usr/bin/time -v` for the peak memory (docs/benchmarks.md):
//!
//! `cargo build --release --example plan_large && /usr/bin/time -v target/release/examples/plan_large` (add `--keep`
//! to keep the snapshot file for `plan`).

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};

use ecs_rebalancer::model::{Cluster, Snapshot};
use ecs_rebalancer::plan::{self, Episode, LedgerView};
use ecs_rebalancer::policy;
use ecs_rebalancer::scenarios::generated;

fn main() {
    let dir = std::env::temp_dir().join("ecs-rebalancer-plan-large");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("snapshot.json");
    generated(5_000, 2_000, 100_000)
        .snapshot()
        .save(&file)
        .expect("write snapshot");
    println!(
        "snapshot: {} MB",
        std::fs::metadata(&file).expect("stat").len() / 1_000_000
    );

    let t = Instant::now();
    let cluster = Cluster::new(Snapshot::load(&file).expect("load")).expect("index");
    let parse = t.elapsed();

    let policy = policy::load_str(
        Path::new("bench.yaml"),
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: bench}\nspec:\n  clusters: [generated]\n  \
         metric: count\n  threshold: {trigger: 0.01, target: 0.0}\n  actions: [stop-tasks, redeploy-services, drain-instances]\n  \
         budgets: {maxUnavailable: 50, perHour: 500, perService: 1, concurrentDrains: 1}\n",
    )
    .expect("policy")
    .remove(0);
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let t = Instant::now();
    let result = plan::plan(&cluster, &policy, &LedgerView::default(), now, Episode::default());
    let planning = t.elapsed();
    println!(
        "parse+index: {:.3} s, plan: {:.3} s, ratio plan/parse: {:.2}",
        parse.as_secs_f64(),
        planning.as_secs_f64(),
        planning.as_secs_f64() / parse.as_secs_f64()
    );
    println!(
        "status {:?}, {} actions, score {:.4} -> {:.4}, {} skipped",
        result.status,
        result.actions.len(),
        result.before.score,
        result.after.score,
        result.skipped.len()
    );
    let mut labels = std::collections::BTreeMap::new();
    for s in &result.skipped {
        *labels.entry(s.label).or_insert(0) += 1;
    }
    println!("skipped by reason: {labels:?}");
    let kinds: Vec<&str> = result.actions.iter().map(|a| a.mv.kind().as_str()).collect();
    println!("actions: {kinds:?}");
    if std::env::args().any(|a| a == "--keep") {
        println!("snapshot kept at {}", file.display());
    } else {
        std::fs::remove_file(&file).ok();
    }
}

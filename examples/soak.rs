//! A soak of the production path: 1,000 controller cycles under a lease, through the real `aws-sdk-ecs` adapter,
//! against the twin served over HTTP with ECS's throttling (tight buckets) and injected faults (2 % internal errors,
//! 10 % of mutation responses dropped after the change was applied, 1 % of describes reporting a failure). A new
//! empty instance registers every 100 cycles, so there is always something to rebalance.
//!
//! `cargo run --release --example soak [-- CYCLES [DYNAMODB_ENDPOINT]]`
//!
//! With a DynamoDB endpoint (e.g. a `moto_server` on 127.0.0.1) the ledger is the DynamoDB one; else the memory one.
//! Prints the figures recorded in docs/benchmarks.md; exits 1 if there was a duplicate or a floor violation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use chrono::Utc;

use ecs_rebalancer::ecs::sdk::SdkEcs;
use ecs_rebalancer::ledger::dynamo::{create_table, DynamoLedger};
use ecs_rebalancer::ledger::lease::{holder_id, Elector, LeaseConfig};
use ecs_rebalancer::ledger::memory::MemoryLedger;
use ecs_rebalancer::ledger::{ActionState, Ledger};
use ecs_rebalancer::reconcile::Controller;
use ecs_rebalancer::twin::server::{serve, Faults, Rates, ServeConfig};
use ecs_rebalancer::twin::{Twin, TwinConfig};

#[path = "../tests/common/http.rs"]
mod http;

const POLICY: &str = "apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata: {name: soak}
spec:
  clusters: [soak]
  metric: count
  threshold: {trigger: 0.2, target: 0.1}
  mode: enforce
  interval: 10s
  budgets: {perCycle: 3, perHour: 300, perService: 50%}
  cooldown: {instance: 30s, service: 30s, newInstance: 0s}
";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let cycles: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dynamodb = args.next();
    match dynamodb {
        Some(endpoint) => {
            let conf = ecs_rebalancer::aws::local(&endpoint);
            let table = format!("soak-{}", std::process::id());
            create_table(&conf, &table).await.expect("create the ledger table");
            println!("ledger: DynamoDB table {table} at {endpoint}");
            soak(cycles, &DynamoLedger::from_conf(&conf, &table)).await;
        }
        None => {
            println!("ledger: memory");
            soak(cycles, &MemoryLedger::new()).await;
        }
    }
}

async fn soak<L: Ledger + Sync>(cycles: u32, ledger: &L) {
    // 8 full instances, 2 empty, 6 services with 4 tasks each on every full instance: 192 tasks.
    let start = ecs_rebalancer::scenarios::scale_out("soak", 8, 2, 6, 4, 1);
    let template = start.container_instances[0].clone();
    let twin = Arc::new(Twin::new(start, TwinConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tight = Rates {
        cluster_read: (6.0, 400.0),
        cluster_modify: (4.0, 100.0),
        service_read: (4.0, 400.0),
        service_modify: (2.0, 50.0),
    };
    let config = ServeConfig {
        speed: 0.0,
        throttle: Some(tight),
        faults: Faults {
            error_rate: 0.02,
            latency: Duration::ZERO,
            drop_mutation_responses: 0.10,
            describe_failures: 0.01,
            protection_failures: 0.0,
        },
        seed: 7,
    };
    tokio::spawn(serve(Arc::clone(&twin), listener, config));

    // Short SDK backoffs: the soak is about outcomes, not about waiting out real backoff times.
    let conf = ecs_rebalancer::aws::local(&format!("http://{addr}"))
        .to_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(4)
                .with_initial_backoff(Duration::from_millis(20)),
        )
        .build();
    let ecs = SdkEcs::from_conf(&conf, None, "soak").read_share(None);
    let policy = ecs_rebalancer::policy::load_str(std::path::Path::new("soak.yaml"), POLICY)
        .expect("the soak policy is valid")
        .remove(0);
    let mut elector = Elector::new("soak", &holder_id(), LeaseConfig::new(Duration::from_secs(30)));
    let mut controller = Controller::new(&ecs, ledger, policy.clone(), "soak").under_lease(elector.view());

    let wall = Instant::now();
    let first_score = ecs_rebalancer::plan::score(
        &ecs_rebalancer::model::Cluster::new(twin.snapshot()).expect("index"),
        &policy,
        twin.now(),
    );
    let mut errors: BTreeMap<&'static str, u32> = BTreeMap::new();
    let verbose = std::env::var_os("SOAK_VERBOSE").is_some();
    let mut registered = 0;
    for cycle in 0..cycles {
        if cycle > 0 && cycle % 100 == 0 {
            let mut fresh = template.clone();
            registered += 1;
            fresh.container_instance_arn = format!("{}-new{registered}", template.container_instance_arn);
            fresh.ec2_instance_id = Some(format!("i-soak{registered:04}"));
            twin.register_instance(fresh).expect("a new instance");
        }
        if let Err(e) = elector.step(ledger, Utc::now()).await {
            *errors.entry("lease").or_default() += 1;
            eprintln!("lease round: {e}");
        }
        match controller.cycle(twin.now()).await {
            Err(e) => *errors.entry(e.label()).or_default() += 1,
            Ok(r) if verbose => println!(
                "cycle {cycle}: {:?} {} | acted {} not sent {:?} in flight {}",
                r.plan.status,
                r.plan.summary,
                r.acted.len(),
                r.not_sent,
                r.in_flight
            ),
            Ok(_) => {}
        }
        twin.advance(Duration::from_secs(10));
    }
    let took = wall.elapsed();

    // The audit.
    let end = twin.snapshot();
    if let Ok(path) = std::env::var("SOAK_FINAL_SNAPSHOT") {
        end.save(std::path::Path::new(&path)).expect("write the final snapshot");
    }
    let records = ledger
        .since("soak", chrono::DateTime::<Utc>::MIN_UTC)
        .await
        .expect("read the ledger");
    let mut by_state: BTreeMap<&str, u32> = BTreeMap::new();
    for r in &records {
        *by_state.entry(r.state.as_str()).or_default() += 1;
    }
    // A duplicate: one stop-task action that stopped more than one task.
    let duplicates: usize = records
        .iter()
        .filter(|r| r.mv.kind() == ecs_rebalancer::moves::MoveKind::StopTask)
        .map(|r| {
            let mark = format!("ecs-rebalancer {}", r.id);
            end.tasks
                .iter()
                .filter(|t| t.stopped_reason.as_deref() == Some(mark.as_str()))
                .count()
                .saturating_sub(1)
        })
        .sum();
    let sent_twice = records
        .iter()
        .filter(|r| r.state == ActionState::Done)
        .map(|r| r.mv.target())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let stats = twin.stats();
    let faults = fetch(&addr.to_string(), "/__twin/faults").await;
    let calls = fetch(&addr.to_string(), "/__twin/calls").await;
    let last_score = ecs_rebalancer::plan::score(
        &ecs_rebalancer::model::Cluster::new(end.clone()).expect("index"),
        &policy,
        twin.now(),
    );
    println!(
        "cycles: {cycles} in {:.1} s wall ({} instances registered on the way)",
        took.as_secs_f64(),
        registered
    );
    println!("cycle errors (nothing acted on in those cycles): {errors:?}");
    println!("actions sent: {:?}", controller.stats.actions_by_kind);
    println!("ledger records by state: {by_state:?}");
    println!("distinct targets done: {sent_twice}");
    for r in records
        .iter()
        .filter(|r| matches!(r.state, ActionState::Failed | ActionState::Abandoned))
    {
        println!(
            "  {} {}: {}",
            r.state.as_str(),
            r.id,
            r.outcome.as_deref().unwrap_or("")
        );
    }
    println!("duplicates (an action that stopped more than one task): {duplicates}");
    println!(
        "floor violations: {} {:?}",
        stats.floor_violations, stats.floor_violators
    );
    println!("mispredictions: {}", controller.stats.mispredictions);
    println!("faults served by the twin: {faults}");
    println!("calls served by the twin: {calls}");
    println!("score: {first_score:.3} at the start, {last_score:.3} at the end");
    if duplicates > 0 || stats.floor_violations > 0 {
        std::process::exit(1);
    }
}

async fn fetch(addr: &str, path: &str) -> String {
    http::get(addr, path).await.1
}

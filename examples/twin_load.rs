//! Reads against a large `twin serve` while a scheduling burst runs (issue 17): starts the real binary on a snapshot
//! at `--tick 60`, drains 50 instances with `UpdateContainerInstancesState` through aws-sdk-ecs, and meanwhile sends
//! `DescribeTasks` (100 tasks a call) back to back, timing each, until the 50 instances are empty or 10 simulated
//! minutes have passed. Prints the drain's outcome and the latency percentiles.
//!
//! ```text
//! cargo build --release --bin ecs-rebalancer --example write_scenarios --example twin_load
//! target/release/examples/write_scenarios /tmp/large --large 5000
//! target/release/examples/twin_load target/release/ecs-rebalancer /tmp/large/large-5000.json
//! ```
//!
//! Figures are recorded in docs/benchmarks.md (Rehearsal at scale).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::ContainerInstanceStatus;

const DRAINED: usize = 50;
/// `--tick 60`: a simulated minute per wall-clock second, so 10 simulated minutes are 10 s.
const TICK: u32 = 60;
const SIMULATED_LIMIT: Duration = Duration::from_secs(600);

/// Stops the server however the example ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [binary, snapshot] = args.as_slice() else {
        panic!("usage: twin_load BINARY SNAPSHOT");
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    let _server = Server(
        Command::new(binary)
            .args(["twin", "serve", "--snapshot", snapshot, "--tick", &TICK.to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start twin serve"),
    );
    let ecs = aws_sdk_ecs::Client::new(&ecs_rebalancer::aws::local(&format!("http://127.0.0.1:{port}")));
    let cluster = loop {
        match ecs.list_clusters().send().await {
            Ok(out) => {
                break out
                    .cluster_arns()
                    .first()
                    .cloned()
                    .expect("the twin serves one cluster")
            }
            Err(_) if started.elapsed() < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("twin serve did not come up: {e}"),
        }
    };
    println!("twin serve up in {:.1} s", started.elapsed().as_secs_f64());

    let instances: Vec<String> = ecs
        .list_container_instances()
        .cluster(&cluster)
        .max_results(DRAINED as i32)
        .send()
        .await
        .expect("ListContainerInstances")
        .container_instance_arns()
        .to_vec();
    let tasks: Vec<String> = ecs
        .list_tasks()
        .cluster(&cluster)
        .max_results(100)
        .send()
        .await
        .expect("ListTasks")
        .task_arns()
        .to_vec();
    let on_drained = |out: &aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesOutput| {
        out.container_instances()
            .iter()
            .map(|i| i.running_tasks_count() + i.pending_tasks_count())
            .sum::<i32>()
    };
    let describe_drained = || {
        ecs.describe_container_instances()
            .cluster(&cluster)
            .set_container_instances(Some(instances.clone()))
            .send()
    };
    let before = on_drained(&describe_drained().await.expect("DescribeContainerInstances"));

    // The reader: DescribeTasks back to back until told to stop.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let reader = {
        let (ecs, cluster, tasks) = (ecs.clone(), cluster.clone(), tasks.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !*stop_rx.borrow_and_update() {
                let t = Instant::now();
                ecs.describe_tasks()
                    .cluster(&cluster)
                    .set_tasks(Some(tasks.clone()))
                    .send()
                    .await
                    .expect("DescribeTasks");
                latencies.push(t.elapsed());
            }
            latencies
        })
    };

    let drain_started = Instant::now();
    for batch in instances.chunks(10) {
        ecs.update_container_instances_state()
            .cluster(&cluster)
            .set_container_instances(Some(batch.to_vec()))
            .status(ContainerInstanceStatus::Draining)
            .send()
            .await
            .expect("UpdateContainerInstancesState");
    }
    let wall_limit = SIMULATED_LIMIT / TICK;
    let mut left = before;
    while drain_started.elapsed() < wall_limit + Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = on_drained(&describe_drained().await.expect("DescribeContainerInstances"));
        if left == 0 {
            break;
        }
    }
    let drained_in = drain_started.elapsed();
    stop_tx.send(true).expect("the reader is running");
    let mut latencies = reader.await.expect("the reader");
    latencies.sort();
    let at = |q: f64| {
        let k = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[k].as_secs_f64() * 1000.0
    };
    println!(
        "drain of {DRAINED} instances: {before} tasks on them before, {left} left after {:.1} s wall (about {:.0} simulated min at --tick {TICK}); {}",
        drained_in.as_secs_f64(),
        drained_in.as_secs_f64() * f64::from(TICK) / 60.0,
        if left == 0 { "completed" } else { "NOT completed" }
    );
    println!(
        "DescribeTasks (100 tasks) during the drain: {} calls, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
    if left != 0 {
        std::process::exit(1);
    }
}

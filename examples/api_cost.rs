//! API cost of one observation at 1,000 instances, 20,000 tasks and 500 services, counted by the twin serving it:
//!
//! `cargo run --release --example api_cost`
//!
//! The batching lower bound is ceil(n/100) list pages and describes for instances and tasks, ceil(services/100)
//! ListServices pages, ceil(services/10) DescribeServices, and one DescribeTaskDefinition per distinct definition.

use std::sync::Arc;
use std::time::Instant;

use ecs_rebalancer::ecs::sdk::SdkEcs;
use ecs_rebalancer::ecs::EcsApi;
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
use ecs_rebalancer::twin::server::{serve, ServeConfig};
use ecs_rebalancer::twin::{Twin, TwinConfig};

#[path = "../tests/common/http.rs"]
mod http;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (instances, services, per_service) = (1_000usize, 500usize, 40usize);
    let mut b = ClusterBuilder::new("cost");
    for i in 0..instances {
        b = b.instance(instance(&format!("{i:05}")).cpu(65536).memory(262_144));
    }
    for s in 0..services {
        b = b.service(service(&format!("svc-{s:04}")).cpu(8).memory(16));
        for k in 0..per_service {
            b = b.tasks(
                &format!("svc-{s:04}"),
                &format!("{:05}", (s * 37 + k * 101) % instances),
                1,
            );
        }
    }
    let twin = Arc::new(Twin::new(b.snapshot(), TwinConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(
        Arc::clone(&twin),
        listener,
        ServeConfig {
            speed: 0.0,
            ..ServeConfig::default()
        },
    ));
    // Unpaced: this counts calls; pacing to a share of ECS's buckets would only make it slower (docs/benchmarks.md).
    let ecs = SdkEcs::from_conf(&ecs_rebalancer::aws::local(&format!("http://{addr}")), None, "cost").read_share(None);
    let t = Instant::now();
    let snap = ecs.observe().await.expect("observe");
    let took = t.elapsed();
    let calls = http::get(&addr.to_string(), "/__twin/calls").await.1;
    let tasks = snap.tasks.len();
    println!(
        "observed {} instances, {tasks} tasks, {} services, {} task definitions in {:.2} s",
        snap.container_instances.len(),
        snap.services.len(),
        snap.task_definitions.len(),
        took.as_secs_f64()
    );
    let bound = |n: usize, per: usize| n.div_ceil(per);
    println!("calls: {calls}");
    println!(
        "lower bound: ListContainerInstances {}, DescribeContainerInstances {}, ListTasks {}, DescribeTasks {}, \
         ListServices {}, DescribeServices {}, DescribeTaskDefinition {}",
        bound(instances, 100),
        bound(instances, 100),
        bound(tasks, 100),
        bound(tasks, 100),
        bound(services, 100),
        bound(services, 10),
        snap.task_definitions.len()
    );
}

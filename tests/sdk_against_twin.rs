//! The `aws-sdk-ecs` adapter end to end against `twin serve` on 127.0.0.1: a whole cluster read across pages and
//! batches comes back exactly as the twin holds it, and mutations reach the twin.

use std::sync::Arc;

use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;
use tokio::net::TcpListener;

use ecs_rebalancer::ecs::sdk::SdkEcs;
use ecs_rebalancer::ecs::{EcsApi, EcsError, InstanceState};
use ecs_rebalancer::model::TaskStatus;
use ecs_rebalancer::testing::{instance, service, ClusterBuilder};
use ecs_rebalancer::twin::server::{serve, ServeConfig};
use ecs_rebalancer::twin::{Twin, TwinConfig};

async fn served(builder: ClusterBuilder) -> (Arc<Twin>, String) {
    let twin = Arc::new(Twin::new(builder.snapshot(), TwinConfig::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(
        Arc::clone(&twin),
        listener,
        ServeConfig {
            speed: 0.0,
            ..ServeConfig::default()
        },
    ));
    (twin, addr)
}

fn client(addr: &str, cluster: &str) -> SdkEcs {
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(format!("http://{addr}"))
        .build();
    SdkEcs::new(aws_sdk_ecs::Client::from_conf(config), cluster)
}

/// 150 instances, 1,200 tasks, 12 services: two pages of instances, twelve of tasks, two batches of services.
fn large() -> ClusterBuilder {
    let mut b = ClusterBuilder::new("wire");
    for s in 0..12 {
        b = b.service(
            service(&format!("svc-{s:02}"))
                .cpu(8)
                .memory(16)
                .spread("instanceId")
                .deployment(50, 200),
        );
    }
    for i in 0..150 {
        b = b.instance(
            instance(&format!("{i:04}"))
                .cpu(8192)
                .memory(32768)
                .flag("ecs.capability.docker"),
        );
    }
    for i in 0..150 {
        for s in 0..8 {
            b = b.tasks(&format!("svc-{:02}", (i + s) % 12), &format!("{i:04}"), 1);
        }
    }
    b
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

#[tokio::test]
async fn observe_reads_every_page_and_batch_and_returns_the_twin_exactly() {
    let (twin, addr) = served(large()).await;
    let ecs = client(&addr, "wire");
    let seen = ecs.observe().await.unwrap();
    let truth = twin.snapshot();
    assert_eq!(seen.container_instances.len(), 150);
    assert_eq!(seen.tasks.len(), 1200);
    assert_eq!(json(&seen.container_instances), json(&truth.container_instances));
    assert_eq!(json(&seen.tasks), json(&truth.tasks));
    assert_eq!(json(&seen.services), json(&truth.services));
    assert_eq!(
        seen.task_definitions.len(),
        12,
        "one per distinct definition that still exists"
    );
    let calls: Value = reqwest_free_get(&addr, "/__twin/calls").await;
    assert_eq!(calls["ListContainerInstances"], 2);
    assert_eq!(calls["ListTasks"], 12, "ceil(1200 / 100): the batching lower bound");
    assert_eq!(calls["DescribeTasks"], 12);
    assert_eq!(calls["DescribeContainerInstances"], 2);
    assert_eq!(calls["ListServices"], 1);
    assert_eq!(calls["DescribeServices"], 2);
    assert_eq!(calls["DescribeTaskDefinition"], 12);

    // Task definitions are immutable by ARN: the next observation describes none again.
    ecs.observe().await.unwrap();
    let calls: Value = reqwest_free_get(&addr, "/__twin/calls").await;
    assert_eq!(calls["DescribeTaskDefinition"], 12);
    assert_eq!(calls["ListTasks"], 24);
}

#[tokio::test]
async fn mutations_reach_the_twin_and_errors_are_classified() {
    let (twin, addr) = served(large()).await;
    let ecs = client(&addr, "wire");
    let task = twin.snapshot().tasks[0].task_arn.clone();
    ecs.stop_task(&task, "ecs-rebalancer stop-task:t").await.unwrap();
    let after = twin.snapshot();
    let t = after.tasks.iter().find(|t| t.task_arn == task).unwrap();
    assert_eq!(t.desired_status, TaskStatus::Stopped);
    assert_eq!(t.stopped_reason.as_deref(), Some("ecs-rebalancer stop-task:t"));

    ecs.force_new_deployment("svc-00").await.unwrap();
    assert_eq!(twin.snapshot().services[0].deployments.len(), 2);

    let arn = twin.snapshot().container_instances[1].container_instance_arn.clone();
    ecs.set_instance_state(&arn, InstanceState::Draining).await.unwrap();
    let e = ecs.set_instance_state(&arn, InstanceState::Draining).await.unwrap_err();
    assert!(matches!(e, EcsError::Invalid(_)), "{e:?}");

    let lost = client(&addr, "elsewhere").observe().await.unwrap_err();
    assert!(matches!(lost, EcsError::NotFound(_)), "{lost:?}");
    let e = ecs
        .stop_task("arn:aws:ecs:eu-west-1:111122223333:task/wire/none", "x")
        .await
        .unwrap_err();
    assert!(matches!(e, EcsError::Invalid(_)), "{e:?}");
}

/// A GET without an HTTP client crate: the twin's own endpoints are plain JSON.
async fn reqwest_free_get(addr: &str, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

/// The user's path: `twin serve` in one process, `snapshot --endpoint-url` in another, static credentials from the
/// environment as the SDK's default chain reads them.
#[test]
fn the_snapshot_command_captures_a_served_twin_exactly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let start = dir.path().join("start.json");
    large().snapshot().save(&start).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"))
        .args(["twin", "serve", "--listen", "127.0.0.1:0", "--speed", "0", "--snapshot"])
        .arg(&start)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("the server says where it listens")
        .to_owned();

    let captured = dir.path().join("captured.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"))
        .args([
            "snapshot",
            "--cluster",
            "wire",
            "--endpoint-url",
            &format!("http://{addr}"),
            "-o",
        ])
        .arg(&captured)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    server.kill().ok();
    server.wait().ok();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let before = ecs_rebalancer::model::Snapshot::load(&start).unwrap();
    let after = ecs_rebalancer::model::Snapshot::load(&captured).unwrap();
    assert_eq!(json(&after.container_instances), json(&before.container_instances));
    assert_eq!(json(&after.tasks), json(&before.tasks));
    assert_eq!(json(&after.services), json(&before.services));
}

async fn served_with(builder: ClusterBuilder, config: ServeConfig) -> (Arc<Twin>, String) {
    let twin = Arc::new(Twin::new(builder.snapshot(), TwinConfig::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(Arc::clone(&twin), listener, config));
    (twin, addr)
}

#[tokio::test]
async fn throttled_reads_recover_through_the_sdk_retries() {
    use ecs_rebalancer::twin::server::Rates;
    let tight = Rates {
        cluster_read: (3.0, 20.0),
        cluster_modify: (3.0, 20.0),
        service_read: (3.0, 20.0),
        service_modify: (3.0, 20.0),
    };
    let config = ServeConfig {
        speed: 0.0,
        throttle: Some(tight),
        ..ServeConfig::default()
    };
    let (twin, addr) = served_with(large(), config).await;
    let seen = client(&addr, "wire").observe().await.unwrap();
    assert_eq!(json(&seen.tasks), json(&twin.snapshot().tasks));
    let calls = reqwest_free_get(&addr, "/__twin/calls").await;
    let total: u64 = calls.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(total > 31, "throttled calls were retried: {calls}");
}

/// A StopTask applied by ECS whose response is lost: the adapter says the outcome is unknown and does not re-send;
/// the controller's next cycle finds the task stopping with its action id and never stops another for it.
#[tokio::test]
async fn a_stop_task_whose_response_is_lost_is_not_repeated() {
    use ecs_rebalancer::ledger::memory::MemoryLedger;
    use ecs_rebalancer::reconcile::Controller;

    let config = ServeConfig {
        speed: 0.0,
        drop_mutation_responses: 1.0,
        ..ServeConfig::default()
    };
    let cluster = ClusterBuilder::new("wire")
        .instance(instance("hot"))
        .instance(instance("cold1"))
        .instance(instance("cold2"))
        .service(service("web").spread("instanceId").deployment(50, 200))
        .tasks("web", "hot", 6);
    let (twin, addr) = served_with(cluster, config).await;
    let ecs = client(&addr, "wire");

    let task = twin.snapshot().tasks[0].task_arn.clone();
    let e = ecs.stop_task(&task, "by hand").await.unwrap_err();
    assert!(matches!(e, EcsError::Unknown(_)), "{e:?}");
    let calls = reqwest_free_get(&addr, "/__twin/calls").await;
    assert_eq!(calls["StopTask"], 1, "a mutation is never retried by the SDK");
    assert_eq!(
        twin.snapshot().tasks[0].desired_status,
        TaskStatus::Stopped,
        "yet it happened"
    );

    let policy = ecs_rebalancer::policy::load_str(
        std::path::Path::new("p.yaml"),
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: p}\nspec:\n  clusters: [wire]\n  \
         metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  mode: enforce\n  \
         budgets: {perCycle: 1, perHour: 100, perService: 100%}\n",
    )
    .unwrap()
    .remove(0);
    let ledger = MemoryLedger::new();
    let mut controller = Controller::new(&ecs, &ledger, policy, "wire");
    let first = controller.cycle(twin.now()).await.unwrap();
    assert!(
        first.acted.is_empty(),
        "the lost response is not counted as sent: {:?}",
        first.not_sent
    );
    let claimed = ledger.all();
    assert_eq!(claimed.len(), 1);
    twin.advance(std::time::Duration::from_secs(20));
    controller.cycle(twin.now()).await.unwrap();
    let records = ledger.all();
    let same = records.iter().filter(|r| r.id == claimed[0].id).count();
    assert_eq!(same, 1, "the same action is never claimed twice");
    let stopped_twice = twin
        .snapshot()
        .tasks
        .iter()
        .filter(|t| t.stopped_reason.as_deref().is_some_and(|r| r.contains(&claimed[0].id)))
        .count();
    assert_eq!(stopped_twice, 1, "one task stopped for the action");
}

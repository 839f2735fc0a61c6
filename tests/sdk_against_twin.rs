//! The `aws-sdk-ecs` adapter end to end against `twin serve` on 127.0.0.1: a whole cluster read across pages and
//! batches comes back exactly as the twin holds it, and mutations reach the twin.

use crate::common;

use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;

use ecs_rebalancer::ecs::sdk::SdkEcs;
use ecs_rebalancer::ecs::{EcsApi, EcsError, InstanceState};
use ecs_rebalancer::model::TaskStatus;
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
use ecs_rebalancer::twin::server::{serve, Faults, ServeConfig};
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
    SdkEcs::from_conf(&ecs_rebalancer::aws::local(&format!("http://{addr}")), None, cluster)
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
    let calls: Value = common::get_json(&addr, "/__twin/calls").await;
    assert_eq!(calls["ListContainerInstances"], 2);
    assert_eq!(calls["ListTasks"], 12, "ceil(1200 / 100): the batching lower bound");
    assert_eq!(calls["DescribeTasks"], 12);
    assert_eq!(calls["DescribeContainerInstances"], 2);
    assert_eq!(calls["ListServices"], 1);
    assert_eq!(calls["DescribeServices"], 2);
    assert_eq!(calls["DescribeTaskDefinition"], 12);

    // Task definitions are immutable by ARN: the next observation describes none again.
    ecs.observe().await.unwrap();
    let calls: Value = common::get_json(&addr, "/__twin/calls").await;
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
    // Again: the state it is already in succeeds and changes nothing, as ECS answers it.
    ecs.set_instance_state(&arn, InstanceState::Draining).await.unwrap();

    let lost = client(&addr, "elsewhere").observe().await.unwrap_err();
    assert!(matches!(lost, EcsError::NotFound(_)), "{lost:?}");
    let e = ecs
        .stop_task("arn:aws:ecs:eu-west-1:111122223333:task/wire/none", "x")
        .await
        .unwrap_err();
    assert!(matches!(e, EcsError::Invalid(_)), "{e:?}");
}

/// The user's path: `twin serve` in one process, `snapshot --endpoint-url` in another, static credentials from the
/// environment as the SDK's default chain reads them. 500 instances and 4,800 tasks come back exactly.
#[test]
fn the_snapshot_command_captures_a_served_500_instance_twin_exactly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let start = dir.path().join("start.json");
    let cluster = ecs_rebalancer::scenarios::scale_out("wire", 400, 100, 12, 1, 1);
    assert_eq!((cluster.container_instances.len(), cluster.tasks.len()), (500, 4800));
    cluster.save(&start).unwrap();
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
            // Unpaced: pacing is shown by `paced_reads_stay_inside_the_buckets_and_are_never_throttled`.
            "--read-share",
            "0",
            "-o",
        ])
        .arg(&captured)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCOUNT_ID")
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
    assert_eq!(after.container_instances.len(), 500);
    assert_eq!(after.tasks.len(), 4800);
    assert!(out.stderr.is_empty(), "no progress line when stderr is not a terminal");
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
    // Every HTTP attempt is reported to the call hook (the controller's api_calls / api_throttles metrics).
    let heard = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let sink = Arc::clone(&heard);
    let hook: ecs_rebalancer::ecs::sdk::CallHook = Arc::new(move |_operation, throttled| {
        let mut h = sink.lock().unwrap();
        h.0 += 1;
        h.1 += u64::from(throttled);
    });
    let conf = ecs_rebalancer::aws::local(&format!("http://{addr}"));
    let seen = SdkEcs::from_conf_counted(&conf, None, "wire", Some(hook))
        .read_share(None)
        .observe()
        .await
        .unwrap();
    assert_eq!(json(&seen.tasks), json(&twin.snapshot().tasks));
    let calls = common::get_json(&addr, "/__twin/calls").await;
    let total: u64 = calls.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(total > 31, "throttled calls were retried: {calls}");
    let throttled = common::get_json(&addr, "/__twin/faults").await["throttled"]
        .as_u64()
        .unwrap();
    assert_eq!(
        *heard.lock().unwrap(),
        (total, throttled),
        "every attempt and every throttle heard"
    );
}

/// A StopTask applied by ECS whose response is lost: the adapter says the outcome is unknown and does not re-send;
/// the controller's next cycle finds the task stopping with its action id and never stops another for it.
#[tokio::test]
async fn a_stop_task_whose_response_is_lost_is_not_repeated() {
    use ecs_rebalancer::ledger::memory::MemoryLedger;
    use ecs_rebalancer::reconcile::Controller;

    let config = ServeConfig {
        speed: 0.0,
        faults: Faults {
            drop_mutation_responses: 1.0,
            ..Faults::default()
        },
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
    let calls = common::get_json(&addr, "/__twin/calls").await;
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
        first.acted.is_empty() && first.not_sent.is_empty(),
        "the lost response is neither confirmed nor 'not sent': {first:?}"
    );
    assert_eq!(first.unanswered.len(), 1, "sent, its answer lost: {first:?}");
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

fn enforce_policy() -> ecs_rebalancer::policy::Policy {
    ecs_rebalancer::policy::load_str(
        std::path::Path::new("p.yaml"),
        "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: p}\nspec:\n  clusters: [wire]\n  \
         metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  mode: enforce\n  \
         budgets: {perCycle: 3, perHour: 100, perService: 100%}\n",
    )
    .unwrap()
    .remove(0)
}

/// A hot cluster the controller would act on at once.
fn hot() -> ClusterBuilder {
    ClusterBuilder::new("wire")
        .instance(instance("hot"))
        .instance(instance("cold1"))
        .instance(instance("cold2"))
        .service(service("web").spread("instanceId").deployment(50, 200))
        .tasks("web", "hot", 6)
}

fn mutations(calls: &Value) -> u64 {
    ["StopTask", "UpdateService", "UpdateContainerInstancesState"]
        .iter()
        .map(|op| calls[op].as_u64().unwrap_or(0))
        .sum()
}

/// ECS answers a describe with an item in `failures[]`: the observation is incomplete, the cycle fails with a reason
/// that names the call and the item, and nothing is claimed or sent. Once ECS answers in full, the same cycle acts.
#[tokio::test]
async fn an_incomplete_observation_yields_no_action() {
    use ecs_rebalancer::ledger::memory::MemoryLedger;
    use ecs_rebalancer::reconcile::{Controller, CycleError};

    let config = ServeConfig {
        speed: 0.0,
        faults: Faults {
            describe_failures: 1.0,
            ..Faults::default()
        },
        ..ServeConfig::default()
    };
    let (twin, addr) = served_with(hot(), config).await;
    let ecs = client(&addr, "wire");
    let ledger = MemoryLedger::new();
    let mut controller = Controller::new(&ecs, &ledger, enforce_policy(), "wire");
    let e = controller.cycle(twin.now()).await.unwrap_err();
    let CycleError::Observe(EcsError::Incomplete(why)) = &e else {
        panic!("expected an incomplete observation, got {e:?}");
    };
    assert!(why.starts_with("DescribeContainerInstances: 1 failure(s)"), "{why}");
    assert!(why.contains("MISSING"), "{why}");
    assert!(ledger.all().is_empty(), "nothing claimed");
    assert_eq!(
        mutations(&common::get_json(&addr, "/__twin/calls").await),
        0,
        "nothing sent"
    );

    // The same cluster through a twin that answers in full: the controller acts, so the refusal above was the fault's.
    let (twin, addr) = served_with(
        hot(),
        ServeConfig {
            speed: 0.0,
            ..ServeConfig::default()
        },
    )
    .await;
    let ecs = client(&addr, "wire");
    let ledger = MemoryLedger::new();
    let mut controller = Controller::new(&ecs, &ledger, enforce_policy(), "wire");
    let report = controller.cycle(twin.now()).await.unwrap();
    assert!(!report.acted.is_empty(), "{report:?}");
}

/// ECS's internal errors (500) on reads are retried by the SDK's standard retries; on a mutation they are returned
/// as an unknown outcome, sent once, and (here) nothing happened.
#[tokio::test]
async fn internal_errors_are_retried_on_reads_and_never_on_mutations() {
    let config = ServeConfig {
        speed: 0.0,
        faults: Faults {
            error_rate: 0.15,
            ..Faults::default()
        },
        seed: 7,
        ..ServeConfig::default()
    };
    let (twin, addr) = served_with(large(), config).await;
    let ecs = client(&addr, "wire");
    let seen = ecs.observe().await.unwrap();
    assert_eq!(json(&seen.tasks), json(&twin.snapshot().tasks));
    let calls = common::get_json(&addr, "/__twin/calls").await;
    let reads: u64 = calls.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(
        reads > 43,
        "the lower bound is 43 calls; failed ones were retried: {calls}"
    );

    let all_fail = ServeConfig {
        speed: 0.0,
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..ServeConfig::default()
    };
    let (twin, addr) = served_with(hot(), all_fail).await;
    let task = twin.snapshot().tasks[0].task_arn.clone();
    let e = client(&addr, "wire").stop_task(&task, "x").await.unwrap_err();
    assert!(matches!(e, EcsError::Unknown(_)), "{e:?}");
    assert_eq!(common::get_json(&addr, "/__twin/calls").await["StopTask"], 1);
    assert_eq!(twin.snapshot().tasks[0].desired_status, TaskStatus::Running);
}

/// "Outcome unknown" is for mutations only (docs/ecs.md: API limits: re-read before deciding). A read that fails is a failed
/// read, named by its operation, on one line without the SDK's debug dump.
#[tokio::test]
async fn a_failed_read_is_a_failed_read_and_only_a_mutation_has_an_unknown_outcome() {
    let all_fail = ServeConfig {
        speed: 0.0,
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..ServeConfig::default()
    };
    let (twin, addr) = served_with(hot(), all_fail).await;
    let ecs = client(&addr, "wire");
    let read = ecs.observe().await.unwrap_err();
    assert!(matches!(read, EcsError::Unavailable(_)), "{read:?}");
    let text = read.to_string();
    assert!(text.contains("ListContainerInstances"), "{text}");
    assert!(!text.contains("outcome unknown"), "{text}");
    let task = twin.snapshot().tasks[0].task_arn.clone();
    let write = ecs.stop_task(&task, "x").await.unwrap_err();
    assert!(write.to_string().starts_with("outcome unknown: StopTask"), "{write}");

    // Nothing listens on port 9 of the loopback: a read that cannot connect fails, a mutation's outcome is unknown.
    let closed = client("127.0.0.1:9", "wire");
    let read = closed.observe().await.unwrap_err();
    let text = read.to_string();
    assert!(matches!(read, EcsError::Unavailable(_)), "{read:?}");
    assert!(
        text.starts_with("request failed: ListContainerInstances: dispatch failure"),
        "{text}"
    );
    assert!(
        !text.contains("DispatchFailure(") && !text.contains('\n'),
        "no debug dump: {text}"
    );
    let write = closed.stop_task(&task, "x").await.unwrap_err();
    assert!(matches!(write, EcsError::Unknown(_)), "{write:?}");
}

/// Client-side pacing: with a share of ECS's read buckets, an observation larger than the share's burst waits for
/// refill instead of being throttled, so a twin whose buckets are barely larger never refuses a call.
#[tokio::test]
async fn paced_reads_stay_inside_the_buckets_and_are_never_throttled() {
    use ecs_rebalancer::twin::server::Rates;
    // A share of 0.2: bursts of 20 cluster reads and service reads, refilled at 4 a second. The observation needs
    // 28 cluster reads and 27 service reads (GetTaskProtection, which ECS's throttling page does not list, shares
    // the service-read bucket); the server's buckets are 0.24 of ECS's (24, refilled at 4.8 a second), so unpaced it refuses
    // a few of them. (Buckets of exactly the same size would refuse the odd call: the two clocks measure
    // refill between different instants, a request's latency apart.)
    let share = 0.2;
    let config = ServeConfig {
        speed: 0.0,
        throttle: Some(Rates::ECS.share(0.24)),
        ..ServeConfig::default()
    };
    let (twin, addr) = served_with(large(), config).await;
    let seen = client(&addr, "wire").read_share(Some(share)).observe().await.unwrap();
    assert_eq!(json(&seen.tasks), json(&twin.snapshot().tasks));
    let calls = common::get_json(&addr, "/__twin/calls").await;
    let total: u64 = calls.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(
        total, 55,
        "exactly the lower bound: no call was throttled and retried: {calls}"
    );

    // The same observation unpaced is throttled (the SDK's retries may or may not recover): the pacing did the work.
    let (_, addr) = served_with(large(), config).await;
    let unpaced = client(&addr, "wire").read_share(None).observe().await;
    let calls = common::get_json(&addr, "/__twin/calls").await;
    let total: u64 = calls.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(
        total > 55 || matches!(unpaced, Err(EcsError::Throttled(_))),
        "unpaced, some calls were throttled: {calls}"
    );
}

/// Utilisation from CloudWatch Container Insights (served by the twin over RPC v2 CBOR, as `aws-sdk-cloudwatch`
/// speaks it): 300 instances take two GetMetricData calls of at most 500 queries; instances with data come back as
/// the twin holds them, instances without are unknown (absent), never zero.
#[tokio::test]
async fn utilization_comes_from_cloudwatch_in_calls_of_500_queries() {
    use ecs_rebalancer::model::Utilization;
    use ecs_rebalancer::utilization::cloudwatch::CloudWatch;
    use ecs_rebalancer::utilization::{Window, WithUtilization};

    let mut b = ClusterBuilder::new("wire").service(service("web"));
    for i in 0..300 {
        b = b.instance(instance(&format!("{i:04}")));
    }
    let mut start = b.snapshot();
    let arns: Vec<String> = start
        .container_instances
        .iter()
        .map(|i| i.container_instance_arn.clone())
        .collect();
    for (k, arn) in arns.iter().enumerate().filter(|(k, _)| k % 3 != 0) {
        let u = Utilization {
            cpu: Some(k as f64 / 400.0),
            memory: (k % 2 == 0).then_some(0.5),
        };
        start.utilization.insert(arn.clone(), u);
    }
    let twin = Arc::new(Twin::new(start.clone(), TwinConfig::default()));
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

    let conf = ecs_rebalancer::aws::local(&format!("http://{addr}"));
    let window = Window {
        window: std::time::Duration::from_secs(300),
        stale_after: std::time::Duration::from_secs(600),
    };
    let observed = WithUtilization::new(
        SdkEcs::from_conf(&conf, None, "wire"),
        CloudWatch::from_conf(&conf, None, window),
    )
    .observe()
    .await
    .unwrap();
    assert_eq!(
        observed.utilization.len(),
        200,
        "a third of the instances have no data: unknown"
    );
    for (arn, want) in &start.utilization {
        let got = observed.utilization[arn];
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            (None, None) => true,
            _ => false,
        };
        assert!(
            close(got.cpu, want.cpu) && close(got.memory, want.memory),
            "{arn}: {got:?} != {want:?}"
        );
    }
    let calls = common::get_json(&addr, "/__twin/calls").await;
    assert_eq!(
        calls["GetMetricData"], 2,
        "600 queries in calls of at most 500: {calls}"
    );
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), `snapshot` keeps one progress line on stderr,
/// rewritten as pages and batches come in, and clears it at the end.
#[test]
fn the_snapshot_command_shows_progress_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let start = dir.path().join("start.json");
    large().snapshot().save(&start).unwrap();
    let twin = common::TwinServer::start(&start, &["--tick", "0"]);
    let command = format!(
        "{} snapshot --cluster wire --endpoint-url {} --read-share 0 -o {}",
        env!("CARGO_BIN_EXE_ecs-rebalancer"),
        twin.url(),
        dir.path().join("captured.json").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCOUNT_ID")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("util-linux's script runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let screen = String::from_utf8_lossy(&out.stdout);
    for line in ["instances: 150/150", "tasks: 1200/1200", "services: 12/12"] {
        assert!(screen.contains(line), "{line:?} in {screen:?}");
    }
    assert!(
        screen.ends_with("\r\u{1b}[2K"),
        "the line is cleared at the end: {screen:?}"
    );
}

async fn served_snapshot(snapshot: ecs_rebalancer::model::Snapshot) -> (Arc<Twin>, String) {
    let twin = Arc::new(Twin::new(snapshot, TwinConfig::default()));
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

/// Every observation reads the scale-in protection of every service task with GetTaskProtection, 100 tasks a call
/// (1,200 tasks: 12 calls), and keeps the protected ones with ECS's expiry. An expiry already past on this machine's
/// clock (here: a twin on its snapshot's clock, weeks behind) is dropped, never taken to mean unprotected.
#[tokio::test]
async fn observe_reads_task_protection_in_batches_of_100() {
    let mut ahead = large().snapshot();
    ahead.captured_at = Some("2099-01-01T00:00:00Z".parse().unwrap());
    let (twin, addr) = served_snapshot(ahead).await;
    let tasks: Vec<String> = twin.snapshot().tasks.iter().map(|t| t.task_arn.clone()).collect();
    let chosen = [&tasks[0], &tasks[555], &tasks[1199]];
    for arn in chosen {
        twin.set_task_protection(arn, true, std::time::Duration::from_secs(7200))
            .unwrap();
    }
    let seen = client(&addr, "wire").observe().await.unwrap();
    let calls: Value = common::get_json(&addr, "/__twin/calls").await;
    assert_eq!(calls["GetTaskProtection"], 12, "ceil(1200 / 100)");
    let mut protected: Vec<&String> = seen.protected_tasks.iter().map(|p| &p.task_arn).collect();
    protected.sort();
    let mut expected = chosen.to_vec();
    expected.sort();
    assert_eq!(protected, expected);
    let two_hours = twin.now() + chrono::Duration::hours(2);
    assert!(seen
        .protected_tasks
        .iter()
        .all(|p| p.protection_enabled && p.expiration_date == Some(two_hours)));

    // The twin's clock behind this machine's: the protection holds, its (past) expiry is not kept.
    let (twin, addr) = served(hot()).await;
    let first = twin.snapshot().tasks[0].task_arn.clone();
    twin.set_task_protection(&first, true, std::time::Duration::from_secs(7200))
        .unwrap();
    let seen = client(&addr, "wire").observe().await.unwrap();
    assert_eq!(seen.protected_tasks.len(), 1);
    assert_eq!(seen.protected_tasks[0].task_arn, first);
    assert!(seen.protected_tasks[0].protection_enabled);
    assert_eq!(seen.protected_tasks[0].expiration_date, None);
}

/// A protection read with a task in `failures[]` makes the observation incomplete: the cycle fails naming the call,
/// and nothing is claimed or sent, because a task whose protection is unknown might be protected.
#[tokio::test]
async fn a_failed_protection_read_yields_no_action() {
    use ecs_rebalancer::ledger::memory::MemoryLedger;
    use ecs_rebalancer::reconcile::{Controller, CycleError};

    let config = ServeConfig {
        speed: 0.0,
        faults: Faults {
            protection_failures: 1.0,
            ..Faults::default()
        },
        ..ServeConfig::default()
    };
    let (twin, addr) = served_with(hot(), config).await;
    let ecs = client(&addr, "wire");
    let ledger = MemoryLedger::new();
    let mut controller = Controller::new(&ecs, &ledger, enforce_policy(), "wire");
    let e = controller.cycle(twin.now()).await.unwrap_err();
    let CycleError::Observe(EcsError::Incomplete(why)) = &e else {
        panic!("expected an incomplete observation, got {e:?}");
    };
    assert!(why.starts_with("GetTaskProtection: 1 failure(s)"), "{why}");
    assert!(ledger.all().is_empty(), "nothing claimed");
    assert_eq!(
        mutations(&common::get_json(&addr, "/__twin/calls").await),
        0,
        "nothing sent"
    );
}

/// A failed call keeps what the SDK said, classified once (`aws::call`): the service's code, message and status, or
/// that nothing answered; the SDK's own error stays reachable as the source, not flattened into the text.
#[tokio::test]
async fn a_failed_call_keeps_the_classified_sdk_error() {
    use ecs_rebalancer::aws::call::Failure;
    use std::error::Error as _;

    let (_, addr) = served(hot()).await;
    let e = client(&addr, "elsewhere").check_cluster().await.unwrap_err();
    assert!(matches!(e, EcsError::NotFound(_)), "{e:?}");
    assert!(e.to_string().contains("check --cluster"), "{e}");
    let call = e.call().expect("the call is kept");
    assert_eq!(call.operation(), "ListContainerInstances");
    assert_eq!(call.code(), Some("ClusterNotFoundException"));
    assert_eq!(
        call.failure(),
        &Failure::Service {
            code: "ClusterNotFoundException".into(),
            message: "Cluster not found.".into(),
            status: 400
        }
    );
    let sdk = call.source().expect("the SDK's error");
    assert!(sdk
        .downcast_ref::<aws_sdk_ecs::error::SdkError<
            aws_sdk_ecs::operation::list_container_instances::ListContainerInstancesError,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >>()
        .is_some());

    // Nothing listens on port 9 of the loopback: no answer, and a read's error says so.
    let e = client("127.0.0.1:9", "wire").observe().await.unwrap_err();
    let call = e.call().expect("the call is kept");
    assert_eq!(call.failure(), &Failure::NoAnswer);
    assert_eq!(e.to_string(), format!("request failed: {call}"));
    // Errors the adapter makes up itself have no call behind them.
    let missing = "arn:aws:ecs:eu-west-1:111122223333:container-instance/wire/none";
    let e = client(&addr, "wire")
        .set_instance_state(missing, InstanceState::Draining)
        .await
        .unwrap_err();
    assert!(matches!(&e, EcsError::Invalid(m) if m.contains("MISSING")), "{e:?}");
    assert!(e.call().is_none());
}

/// CloudWatch's failures go through the same classification: one line, the call kept, and the observation it
/// belongs to is incomplete (a policy that balances on actual use must not act on none).
#[tokio::test]
async fn a_failed_metric_read_is_one_line_and_keeps_the_call() {
    use ecs_rebalancer::aws::call::Failure;
    use ecs_rebalancer::utilization::cloudwatch::CloudWatch;
    use ecs_rebalancer::utilization::{UtilizationSource as _, Window, WithUtilization};

    let window = Window {
        window: std::time::Duration::from_secs(300),
        stale_after: std::time::Duration::from_secs(600),
    };
    let snapshot = hot().snapshot();
    // Nothing listens on port 9 of the loopback.
    let closed = CloudWatch::from_conf(&ecs_rebalancer::aws::local("http://127.0.0.1:9"), None, window);
    let e = closed.fetch(&snapshot, chrono::Utc::now()).await.unwrap_err();
    assert!(e.to_string().starts_with("GetMetricData: dispatch failure"), "{e}");
    assert!(!e.to_string().contains("DispatchFailure("), "no debug dump: {e}");
    assert_eq!(e.0.call().map(|c| c.failure()), Some(&Failure::NoAnswer));

    let (_, addr) = served(hot()).await;
    let ecs = client(&addr, "wire");
    let e = WithUtilization::new(ecs, closed).observe().await.unwrap_err();
    assert!(
        matches!(&e, EcsError::Incomplete(m) if m.starts_with("utilization: GetMetricData: dispatch failure")),
        "{e:?}"
    );
    assert_eq!(e.call().map(|c| c.operation()), Some("GetMetricData"));
}

#[tokio::test]
async fn a_task_definition_that_cannot_be_described_is_named_in_the_error() {
    let mut snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .service(service("web"))
        .tasks("web", "a", 1)
        .standalone_task("report", "a", 256, 512)
        .snapshot();
    let report = snap
        .task_definitions
        .iter()
        .position(|d| d.family.as_deref() == Some("report"))
        .expect("the builder writes a standalone task's definition too");
    let arn = snap.task_definitions.remove(report).task_definition_arn;
    let (_twin, addr) = served_snapshot(snap).await;
    let err = client(&addr, "c").observe().await.unwrap_err();
    assert!(err.to_string().contains(&arn), "{err}");
}

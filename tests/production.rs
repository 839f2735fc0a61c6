//! The production controller end to end: the `init`, `once`, `run` and `status` commands in their own processes,
//! ECS served by `twin serve`, the ledger in DynamoDB on `moto_server`, both on 127.0.0.1, configured the AWS way
//! (static credentials in the environment, `AWS_ENDPOINT_URL_ECS` / `AWS_ENDPOINT_URL_DYNAMODB`).
//!
//! What must hold: one replica acts; a leader killed between claim and ECS call, or between ECS call and
//! completion, leaves its follower to settle the action without a duplicate; no DynamoDB means no ECS mutation;
//! overlapping `once` runs act once; cooldowns stop a second `once` from touching the same targets.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{get_json, moto, TwinServer};
use ecs_rebalancer::ledger::dynamo::{create_table, DynamoLedger};
use ecs_rebalancer::ledger::{ActionRecord, ActionState, Ledger as _};
use ecs_rebalancer::moves::MoveKind;
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};

pub(crate) const POLICY: &str = "apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata: {name: prod}
spec:
  clusters: [prod]
  metric: count
  threshold: {trigger: 0.2, target: 0.05}
  mode: enforce
  interval: 10s
  budgets: {perCycle: 2, perHour: 100, perService: 100%}
";

/// A hot instance with eight tasks of one service and three empty ones.
pub(crate) fn write_fixture(dir: &Path) {
    ClusterBuilder::new("prod")
        .instance(instance("hot"))
        .instance(instance("cold1"))
        .instance(instance("cold2"))
        .instance(instance("cold3"))
        .service(service("web").spread("instanceId").deployment(50, 200))
        .tasks("web", "hot", 8)
        .snapshot()
        .save(&dir.join("start.json"))
        .unwrap();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
}

/// A fresh table on the test binary's moto server.
pub(crate) async fn table() -> (String, DynamoLedger) {
    let conf = ecs_rebalancer::aws::local(&moto::endpoint());
    let name = moto::unique("prod");
    create_table(&conf, &name).await.unwrap();
    (name.clone(), DynamoLedger::from_conf(&conf, &name))
}

/// `ecs-rebalancer ARGS` with the AWS environment pointing ECS at the twin and DynamoDB at `dynamodb`.
pub(crate) fn command(dir: &Path, twin: &TwinServer, dynamodb: &str, args: &[&str]) -> Command {
    let mut c = ledger_command(dir, dynamodb, args);
    c.env("AWS_ENDPOINT_URL_ECS", twin.url());
    c
}

/// `ecs-rebalancer ARGS` with the AWS environment pointing DynamoDB at `dynamodb` (and ECS nowhere).
pub(crate) fn ledger_command(dir: &Path, dynamodb: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"));
    c.current_dir(dir)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_ECS", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        .env("AWS_ENDPOINT_URL_STS", moto::endpoint())
        .env("RUST_LOG", "info")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCOUNT_ID");
    c
}

fn controller_args<'a>(kind: &'a str, table: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    controller_args_with(kind, "policy.yaml", table, extra)
}

/// The arguments of `once` or `run` with `--policy POLICY`.
pub(crate) fn controller_args_with<'a>(
    kind: &'a str,
    policy: &'a str,
    table: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        kind,
        "--policy",
        policy,
        "--cluster",
        "prod",
        "--table",
        table,
        "--lease-duration",
        "2s",
    ];
    if kind == "run" {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    args.extend(extra);
    args
}

fn once(dir: &Path, twin: &TwinServer, table: &str, extra: &[&str]) -> Output {
    command(dir, twin, &moto::endpoint(), &controller_args("once", table, extra))
        .output()
        .unwrap()
}

fn spawn_run(dir: &Path, twin: &TwinServer, table: &str, extra: &[&str]) -> Child {
    command(dir, twin, &moto::endpoint(), &controller_args("run", table, extra))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM, then the exit status and stderr.
fn terminate(child: Child) -> (Option<i32>, String) {
    common::sigterm(&child);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// StopTask calls per task, from the twin: every task must be stopped at most once.
async fn stops(twin: &TwinServer) -> (u64, Vec<Value>) {
    let calls = get_json(&twin.addr, "/__twin/calls").await;
    let snapshot = get_json(&twin.addr, "/__twin/snapshot").await;
    let stopped: Vec<Value> = snapshot["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["stoppedReason"]
                .as_str()
                .is_some_and(|r| r.starts_with("ecs-rebalancer"))
        })
        .cloned()
        .collect();
    (calls["StopTask"].as_u64().unwrap_or(0), stopped)
}

fn mutations(calls: &Value) -> u64 {
    ["StopTask", "UpdateService", "UpdateContainerInstancesState"]
        .iter()
        .map(|op| calls[op].as_u64().unwrap_or(0))
        .sum()
}

pub(crate) async fn records(ledger: &DynamoLedger) -> Vec<ActionRecord> {
    ledger.actions("prod").await.unwrap()
}

/// Waits until `done` holds for the ledger's records, or panics after `limit`.
pub(crate) async fn until(ledger: &DynamoLedger, limit: Duration, what: &str, done: impl Fn(&[ActionRecord]) -> bool) {
    let start = Instant::now();
    loop {
        let all = records(ledger).await;
        if done(&all) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what} within {limit:?}; the ledger holds {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn init_once_status_and_a_second_once_inside_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "60"]);
    let table = moto::unique("init");

    let out = command(dir.path(), &twin, &moto::endpoint(), &["init", "--table", &table])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("created table {table}")));

    let first = once(dir.path(), &twin, &table, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("2 sent"), "{}", text(&first.stdout));
    // The score now, then what the cycle planned and expects.
    let head = text(&first.stdout).lines().next().unwrap_or_default().to_owned();
    assert!(head.starts_with("score ") && head.contains("expected score"), "{head}");
    // Every log line of an action names it; logs are JSON lines off a terminal.
    let claimed: Vec<Value> = text(&first.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "claimed")
        .collect();
    assert_eq!(claimed.len(), 2, "{}", text(&first.stderr));
    assert!(claimed
        .iter()
        .all(|l| l["action"].as_str().is_some_and(|a| a.starts_with("stop-task:"))));

    let (calls, stopped) = stops(&twin).await;
    assert_eq!((calls, stopped.len()), (2, 2));

    let status = command(
        dir.path(),
        &twin,
        &moto::endpoint(),
        &["status", "--cluster", "prod", "--table", &table, "-o", "json"],
    )
    .output()
    .unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let in_flight = status["inFlight"].as_array().unwrap();
    assert_eq!(in_flight.len(), 2, "{status:#}");
    for action in in_flight {
        let id = action["id"].as_str().unwrap();
        assert!(
            stopped
                .iter()
                .any(|t| t["stoppedReason"].as_str().unwrap().contains(id)),
            "status names the actions the twin saw: {id}"
        );
        assert_eq!(action["state"], "acting");
        // Listed, or all but a few of the cluster's instances when the replacement may land on most of them.
        let landing = &action["predictedLanding"];
        let count = landing
            .as_array()
            .map_or_else(|| landing["count"].as_u64().unwrap(), |l| l.len() as u64);
        assert!(count > 0, "{landing}");
    }
    assert_eq!(status["leader"]["epoch"], 1);
    assert_eq!(status["leader"]["released"], true, "once releases the lease");

    // The stops play out on the twin (30 s simulated = 0.5 s here); the second once settles them, starts the
    // service's cooldown, and takes no new action on it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = once(dir.path(), &twin, &table, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("0 sent, 2 settled"),
        "{}",
        text(&second.stdout)
    );
    let (calls, _) = stops(&twin).await;
    assert_eq!(calls, 2, "nothing new inside the cooldown");
    // Verify-after-act in one clock: each stop names the instance its replacement landed on, though the twin's clock
    // (a day after the snapshot's instances registered) is weeks behind the controller's.
    let ledger = DynamoLedger::from_conf(&ecs_rebalancer::aws::local(&moto::endpoint()), &table);
    let settled = records(&ledger).await;
    assert_eq!(settled.len(), 2);
    for r in &settled {
        assert_eq!(r.state, ActionState::Done, "{r:#?}");
        // Both stops were of one service in one cycle: each replacement is newer than both claims, and ECS does not
        // say which replaced which, so each outcome names both candidates.
        let outcome = r.outcome.as_deref().unwrap_or_default();
        let named = outcome
            .strip_prefix("replacement running on one of ")
            .and_then(|o| o.split(" (").next())
            .unwrap_or_else(|| panic!("the outcome names the replacements' instances: {outcome:?}"));
        let named: Vec<&str> = named.split(", ").collect();
        assert!((1..=2).contains(&named.len()), "{outcome:?}");
        assert!(
            named.iter().all(|n| ["i-cold1", "i-cold2", "i-cold3"].contains(n)),
            "{outcome:?}"
        );
    }
    let table_view = command(
        dir.path(),
        &twin,
        &moto::endpoint(),
        &["status", "--cluster", "prod", "--table", &table],
    )
    .output()
    .unwrap();
    let table_view = text(&table_view.stdout);
    assert!(table_view.contains("cooldowns: "), "{table_view}");
    assert!(table_view.contains("service#web"), "{table_view}");
    assert!(table_view.contains("recent: 2"), "{table_view}");
    assert!(table_view.contains("epoch 2 (released"), "{table_view}");
}

#[tokio::test]
async fn two_overlapping_once_runs_act_once() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    // Slow answers keep the first run inside its cycle while the second starts.
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "0", "--latency", "150ms"]);
    let (table, ledger) = table().await;
    let args = controller_args("once", &table, &[]);
    let spawn = || {
        command(dir.path(), &twin, &moto::endpoint(), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = spawn();
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(3)],
        "one acts, the other sees a renewing leader and stops:\n{}\n{}",
        text(&a.stderr),
        text(&b.stderr)
    );
    let (calls, stopped) = stops(&twin).await;
    assert_eq!((calls, stopped.len()), (2, 2));
    let all = records(&ledger).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|r| r.epoch == 1 && r.holder == all[0].holder));
}

#[tokio::test]
async fn no_dynamodb_means_no_ecs_mutation() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "0"]);
    // Nothing listens on port 9 of the loopback.
    let out = command(
        dir.path(),
        &twin,
        "http://127.0.0.1:9",
        &controller_args("once", "any-table", &[]),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ledger"), "{}", text(&out.stderr));
    let calls = get_json(&twin.addr, "/__twin/calls").await;
    assert_eq!(mutations(&calls), 0, "{calls}");
}

#[tokio::test]
async fn two_run_replicas_on_one_cluster_exactly_one_acts() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "60"]);
    let (table, ledger) = table().await;
    let a = spawn_run(dir.path(), &twin, &table, &[]);
    let b = spawn_run(dir.path(), &twin, &table, &[]);
    until(&ledger, Duration::from_secs(20), "two actions", |r| r.len() >= 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Both are told to stop at once: the first to release its lease may hand it to the other before that one has
    // read its own signal, so only what they did before shutting down is counted.
    common::sigterm(&a);
    common::sigterm(&b);
    let output = |c: Child| {
        let out = c.wait_with_output().unwrap();
        (out.status.code(), text(&out.stderr))
    };
    let ((code_a, log_a), (code_b, log_b)) = (output(a), output(b));
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{log_a}\n{log_b}");
    let all = records(&ledger).await;
    let holders: std::collections::BTreeSet<&str> = all.iter().map(|r| r.holder.as_str()).collect();
    assert_eq!(holders.len(), 1, "every action by one holder: {all:#?}");
    let before_shutdown = |log: &str| log.split("shutdown requested").next().unwrap_or_default().to_owned();
    let leading = [&log_a, &log_b]
        .iter()
        .filter(|l| before_shutdown(l).contains("\"leading\""))
        .count();
    assert_eq!(leading, 1, "one replica led:\n{log_a}\n{log_b}");
    let (calls, stopped) = stops(&twin).await;
    assert_eq!(
        calls as usize,
        all.iter().filter(|r| r.mv.kind() == MoveKind::StopTask).count()
    );
    assert_eq!(stopped.len(), calls as usize, "no task stopped twice");
    assert!(
        log_a.contains("releasing the lease") && log_b.contains("releasing the lease"),
        "SIGTERM releases the lease"
    );
}

#[cfg(feature = "crash-points")]
/// Kills the leader at `point` of its first action; a follower started afterwards takes over after one lease of
/// silence and settles that action; no task is stopped twice.
async fn leader_killed(point: &str, expected: ActionState) {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "60"]);
    let (table, ledger) = table().await;
    let leader = spawn_run(dir.path(), &twin, &table, &["--crash-at", point]);
    let out = leader.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None, "aborted by a signal: {}", text(&out.stderr));
    let claimed = records(&ledger).await;
    assert_eq!(claimed.len(), 1, "the crash came at the first action");
    assert_eq!(claimed[0].state, ActionState::Claimed);
    let id = claimed[0].id.clone();
    let (calls, _) = stops(&twin).await;
    assert_eq!(calls, u64::from(point == "after-act"));

    let started = Instant::now();
    let follower = spawn_run(dir.path(), &twin, &table, &[]);
    until(
        &ledger,
        Duration::from_secs(30),
        "the follower settles the action",
        |all| all.iter().any(|r| r.id == id && r.state == expected),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "not before a whole lease of silence: {:?}",
        started.elapsed()
    );
    let (code, log) = terminate(follower);
    assert_eq!(code, Some(0), "{log}");
    let all = records(&ledger).await;
    let settled = all.iter().find(|r| r.id == id).unwrap();
    assert_eq!(settled.epoch, 1, "claimed under the dead leader's epoch");
    assert!(
        all.iter().filter(|r| r.id != id).all(|r| r.epoch == 2),
        "the follower acts at epoch 2"
    );
    let (calls, stopped) = stops(&twin).await;
    assert_eq!(stopped.len(), calls as usize, "no task stopped twice");
    let for_id = stopped
        .iter()
        .filter(|t| t["stoppedReason"].as_str().unwrap().contains(&id))
        .count();
    assert_eq!(
        for_id,
        usize::from(point == "after-act"),
        "the crashed action reached ECS at most once"
    );
}

#[cfg(feature = "crash-points")]
#[tokio::test]
async fn a_leader_killed_after_its_claim_leaves_the_follower_to_abandon_it() {
    leader_killed("after-claim", ActionState::Abandoned).await;
}

#[cfg(feature = "crash-points")]
#[tokio::test]
async fn a_leader_killed_after_the_ecs_call_leaves_the_follower_to_complete_it() {
    leader_killed("after-act", ActionState::Done).await;
}

/// With an expected account, STS must name it before anything else is called: moto's STS answers account
/// 123456789012, so expecting another stops `snapshot` and `once` before a single ECS call.
#[tokio::test]
async fn the_account_guard_stops_everything_before_the_first_ecs_call() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "0"]);
    let (table, _) = table().await;
    let wrong = ["--expect-account", "111111111111"];
    let snapshot = |extra: &[&str]| {
        let mut args = vec!["snapshot", "--cluster", "prod", "-o", "captured.json"];
        args.extend(extra);
        command(dir.path(), &twin, &moto::endpoint(), &args).output().unwrap()
    };
    let out = snapshot(&wrong);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("belong to account 123456789012")
            && text(&out.stderr).contains("not the expected 111111111111"),
        "{}",
        text(&out.stderr)
    );
    let out = once(dir.path(), &twin, &table, &wrong);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let calls = get_json(&twin.addr, "/__twin/calls").await;
    assert_eq!(calls, serde_json::json!({}), "not one ECS call");

    // The same through the environment, with the right account: the capture goes ahead.
    let out = command(
        dir.path(),
        &twin,
        &moto::endpoint(),
        &["snapshot", "--cluster", "prod", "-o", "captured.json"],
    )
    .env("AWS_ACCOUNT_ID", "123456789012")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.path().join("captured.json").exists());
}

/// Lines a child writes to stderr, collected as they come.
pub(crate) struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Lines {
    pub(crate) fn follow(child: &mut Child) -> Lines {
        use std::io::BufRead;
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Lines(lines)
    }

    /// The first JSON log line whose message is `message`, waiting up to `limit`.
    pub(crate) async fn wait_for(&self, message: &str, limit: Duration) -> Value {
        self.wait_for_where(message, limit, |_| true).await
    }

    /// Every line so far.
    pub(crate) fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// The first JSON log line whose message is `message` and of which `holds` holds, waiting up to `limit`.
    pub(crate) async fn wait_for_where(&self, message: &str, limit: Duration, holds: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let found = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["message"] == message && holds(l));
            if let Some(line) = found {
                return line;
            }
            assert!(
                start.elapsed() < limit,
                "no {message:?} within {limit:?}: {:#?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `run` serves /healthz, /readyz and Prometheus text at /metrics; a broken policy edit is reported and the last
/// good policy kept; a good edit is picked up; SIGTERM ends it cleanly.
#[tokio::test]
async fn run_serves_metrics_and_health_and_reloads_policy_edits() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--speed", "60"]);
    let (table, ledger) = table().await;
    let mut child = spawn_run(dir.path(), &twin, &table, &[]);
    let lines = Lines::follow(&mut child);
    let serving = lines
        .wait_for("serving /metrics, /healthz, /readyz", Duration::from_secs(10))
        .await;
    let addr = serving["addr"].as_str().unwrap().to_owned();
    assert_eq!(common::get(&addr, "/healthz").await, (200, "ok\n".into()));
    // The container health check: the binary itself asks /healthz (an image with no shell has no curl).
    let health = || common::cli(dir.path(), &["health", "--listen", &addr]);
    assert_eq!(health().0, 0, "{:?}", health());
    until(&ledger, Duration::from_secs(20), "two actions", |r| r.len() >= 2).await;
    lines.wait_for("cycle", Duration::from_secs(10)).await;
    assert_eq!(common::get(&addr, "/readyz").await.0, 200);
    let (status, metrics) = common::get(&addr, "/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "ecs_rebalancer_cycles_total{cluster=\"prod\",result=\"ok\"} 1",
        "ecs_rebalancer_lease_held{cluster=\"prod\"} 1",
        "ecs_rebalancer_actions_total{kind=\"stop-task\",outcome=\"sent\"} 2",
        "ecs_rebalancer_score{cluster=\"prod\"}",
        "ecs_rebalancer_api_calls_total{operation=\"StopTask\"} 2",
        "ecs_rebalancer_api_calls_total{operation=\"ListTasks\"}",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }

    std::fs::write(dir.path().join("policy.yaml"), POLICY.replace("metric:", "metrik:")).unwrap();
    let invalid = lines
        .wait_for(
            "policy edit is invalid; keeping the last good policy",
            Duration::from_secs(10),
        )
        .await;
    let error = invalid["error"].as_str().unwrap();
    assert!(error.contains("policy.yaml:6:3") && error.contains("metrik"), "{error}");
    std::fs::write(
        dir.path().join("policy.yaml"),
        POLICY.replace("mode: enforce", "mode: dry-run"),
    )
    .unwrap();
    let reloaded = lines.wait_for("policy reloaded", Duration::from_secs(10)).await;
    assert_eq!(reloaded["policy"], "prod");
    let (_, metrics) = common::get(&addr, "/metrics").await;
    assert!(
        metrics.contains("ecs_rebalancer_policy_reloads_total{result=\"invalid\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ecs_rebalancer_policy_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );

    common::sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let (code, _, stderr) = health();
    assert_eq!(code, 1, "no controller, no health");
    assert!(stderr.contains(&format!("GET http://{addr}/healthz")), "{stderr}");
    lines
        .wait_for("shutting down: releasing the lease", Duration::from_secs(5))
        .await;
    assert_eq!(ledger.read_lease("prod").await.unwrap().map(|l| l.released), Some(true));
}

/// `init` is idempotent: run twice, the second finds the table as the first made it, says so and exits 0.
#[test]
fn init_twice_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let table = moto::unique("init-twice");
    let init = || {
        ledger_command(dir.path(), &moto::endpoint(), &["init", "--table", &table])
            .output()
            .unwrap()
    };
    let first = init();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains(&format!("created table {table}")));
    let second = init();
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains(&format!("table {table} already exists")),
        "{}",
        text(&second.stdout)
    );
}

/// `aws dynamodb ARGS` against this binary's moto server.
fn aws_dynamodb(args: &[&str]) {
    let out = Command::new("aws")
        .arg("dynamodb")
        .args(args)
        .args(["--endpoint-url", &moto::endpoint(), "--region", "eu-west-1"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the AWS CLI runs (scripts/test.sh installs it)");
    assert!(out.status.success(), "aws dynamodb {args:?}: {}", text(&out.stderr));
}

/// A table of that name that is not shaped as the ledger needs is never touched: `init` exits 1 with one message
/// naming every difference (the key schema, TTL).
#[test]
fn init_on_a_table_shaped_otherwise_exits_1_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let init = |table: &str| {
        ledger_command(dir.path(), &moto::endpoint(), &["init", "--table", table])
            .output()
            .unwrap()
    };
    // Someone else's table: another key schema, no TTL.
    let other = moto::unique("init-other");
    aws_dynamodb(&[
        "create-table",
        "--table-name",
        &other,
        "--attribute-definitions",
        "AttributeName=id,AttributeType=S",
        "--key-schema",
        "AttributeName=id,KeyType=HASH",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    let out = init(&other);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let message = text(&out.stderr);
    assert!(
        message.contains(&format!("table {other} already exists"))
            && message.contains("its key schema is id (HASH, S), the ledger's is pk (HASH, S), sk (RANGE, S)")
            && message.contains("its TTL is DISABLED")
            && message.contains("choose another --table name"),
        "{message}"
    );
    // Used as a ledger all the same, it is named as the wrong table, not as an outage.
    let out = ledger_command(
        dir.path(),
        &moto::endpoint(),
        &["status", "--table", &other, "--cluster", "prod"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let message = text(&out.stderr);
    assert!(
        message.contains("key schema is not ecs-rebalancer's")
            && message.contains(&format!("init --table {other}"))
            && !message.contains("unavailable"),
        "{message}"
    );

    // The ledger's keys, but TTL never turned on (an init interrupted after CreateTable): named, with the fix.
    let half = moto::unique("init-half");
    aws_dynamodb(&[
        "create-table",
        "--table-name",
        &half,
        "--attribute-definitions",
        "AttributeName=pk,AttributeType=S",
        "AttributeName=sk,AttributeType=S",
        "--key-schema",
        "AttributeName=pk,KeyType=HASH",
        "AttributeName=sk,KeyType=RANGE",
        "--billing-mode",
        "PAY_PER_REQUEST",
    ]);
    let out = init(&half);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let message = text(&out.stderr);
    assert!(
        !message.contains("key schema")
            && message.contains("its TTL is DISABLED, the ledger's is ENABLED on expiresAt")
            && message.contains("update-time-to-live"),
        "{message}"
    );
    // Once TTL is on, the same table is the ledger's.
    aws_dynamodb(&[
        "update-time-to-live",
        "--table-name",
        &half,
        "--time-to-live-specification",
        "Enabled=true,AttributeName=expiresAt",
    ]);
    let out = init(&half);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// A rehearsal settles a redeploy exactly as production would: `run` against `twin serve --tick 20` (the twin's clock
/// weeks behind the controller's) records it `done` once ECS's rollout has completed, naming the tasks it replaced
/// by the deployment's id in their `startedBy`, not by comparing the twin's clock with the controller's.
#[tokio::test]
async fn run_settles_a_redeploy_to_done_once_its_rollout_completes() {
    let dir = tempfile::tempdir().unwrap();
    // minimumHealthyPercent 100: a stop would breach the floor, so the planner redeploys (start before stop).
    ClusterBuilder::new("prod")
        .instance(instance("hot"))
        .instance(instance("cold1"))
        .instance(instance("cold2"))
        .instance(instance("cold3"))
        .service(service("web").spread("instanceId").deployment(100, 200))
        .tasks("web", "hot", 8)
        .snapshot()
        .save(&dir.path().join("start.json"))
        .unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        POLICY
            .replace(
                "mode: enforce",
                "mode: enforce\n  actions: [stop-tasks, redeploy-services]",
            )
            .replace("perCycle: 2", "perCycle: 8"),
    )
    .unwrap();
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "20"]);
    let (table, ledger) = table().await;
    let child = spawn_run(dir.path(), &twin, &table, &[]);
    until(&ledger, Duration::from_secs(60), "the redeploy settled", |all| {
        all.iter()
            .any(|r| r.mv.kind() == MoveKind::RedeployService && !r.state.in_flight())
    })
    .await;
    let (code, log) = terminate(child);
    assert_eq!(code, Some(0), "{log}");
    let all = records(&ledger).await;
    let redeploy = all.iter().find(|r| r.mv.kind() == MoveKind::RedeployService).unwrap();
    assert_eq!(redeploy.state, ActionState::Done, "{redeploy:#?}\n{log}");
    let outcome = redeploy.outcome.as_deref().unwrap_or_default();
    assert!(outcome.starts_with("8 task(s) replaced, on i-"), "{outcome:?}");
    // ECS's side: the rollout the record calls done has completed, on one deployment newer than the claim's.
    let snapshot = get_json(&twin.addr, "/__twin/snapshot").await;
    let web = &snapshot["services"][0];
    assert_eq!(web["deployments"].as_array().unwrap().len(), 1, "{web:#}");
    assert_eq!(web["deployments"][0]["rolloutState"], "COMPLETED");
    assert_ne!(
        web["deployments"][0]["id"].as_str(),
        redeploy.deployment_before.as_deref(),
        "a new deployment"
    );
}

/// Waits until the twin has nothing starting or stopping (every service task RUNNING), or panics after 30 s.
async fn settled_twin(twin: &TwinServer) -> Value {
    let start = Instant::now();
    loop {
        let snapshot = get_json(&twin.addr, "/__twin/snapshot").await;
        let busy =
            snapshot["tasks"].as_array().unwrap().iter().any(|t| {
                t["lastStatus"] != "STOPPED" && (t["lastStatus"] != "RUNNING" || t["desiredStatus"] == "STOPPED")
            });
        if !busy {
            return snapshot;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the twin settles: {snapshot:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Running tasks per instance id (`i-…`), for a snapshot of `write_fixture`'s cluster.
fn spread(snapshot: &Value) -> Vec<(String, usize)> {
    let mut out = std::collections::BTreeMap::new();
    for i in snapshot["containerInstances"].as_array().unwrap() {
        out.insert(
            i["containerInstanceArn"].as_str().unwrap().to_owned(),
            (i["ec2InstanceId"].as_str().unwrap().to_owned(), 0),
        );
    }
    for t in snapshot["tasks"].as_array().unwrap() {
        if t["lastStatus"] == "RUNNING" && t["desiredStatus"] == "RUNNING" {
            out.get_mut(t["containerInstanceArn"].as_str().unwrap()).unwrap().1 += 1;
        }
    }
    let mut v: Vec<(String, usize)> = out.into_values().collect();
    v.sort();
    v
}

/// Hysteresis across processes: with trigger 0.8 and target 0.1, the first `once` takes the score from 1.73 to 0.61
/// (four stops, the cycle's budget). 0.61 is below the trigger, so only the episode the first run started, kept in
/// the ledger, lets the next `once` (a new process) carry on down to the target.
#[tokio::test]
async fn a_once_series_keeps_rebalancing_from_the_trigger_down_to_the_target() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    std::fs::write(
        dir.path().join("policy.yaml"),
        POLICY
            .replace("trigger: 0.2, target: 0.05", "trigger: 0.8, target: 0.1")
            .replace("perCycle: 2", "perCycle: 4")
            + "  cooldown: {instance: 0s, service: 0s}\n",
    )
    .unwrap();
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "60"]);
    let (table, ledger) = table().await;

    let first = once(dir.path(), &twin, &table, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("4 sent"), "{}", text(&first.stdout));
    let episode = ledger
        .read_episode("prod")
        .await
        .unwrap()
        .expect("the episode is in the ledger");
    assert!(episode.active && episode.started_at.is_some(), "{episode:?}");
    let after_first = spread(&settled_twin(&twin).await);
    assert_eq!(
        after_first.iter().map(|(_, n)| *n).max(),
        Some(4),
        "score 0.61, below the trigger: {after_first:?}"
    );

    let second = once(dir.path(), &twin, &table, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("2 sent, 4 settled"),
        "a new process carries on the episode below the trigger: {}",
        text(&second.stdout)
    );
    let end = spread(&settled_twin(&twin).await);
    assert!(end.iter().all(|(_, n)| *n == 2), "at the target: {end:?}");

    let third = once(dir.path(), &twin, &table, &[]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third.stderr));
    assert!(
        text(&third.stdout).contains("0 sent, 2 settled"),
        "{}",
        text(&third.stdout)
    );
    assert_eq!(
        ledger.read_episode("prod").await.unwrap().map(|e| e.active),
        Some(false),
        "the target reached ends the episode"
    );
    assert_eq!(records(&ledger).await.len(), 6);
}

/// Two hot instances: `hot-a` with ten `web` tasks, every one under task scale-in protection (until a day after the
/// twin's clock starts), and `hot-b` with six unprotected `api` tasks; three empty instances. Unaware of protection,
/// the planner's first moves are `api`, then `web` from the hotter `hot-a`. Returns the protected task ARNs.
fn write_protected_fixture(dir: &Path, policy_extra: &str) -> Vec<String> {
    let mut snapshot = ClusterBuilder::new("prod")
        .instance(instance("hot-a"))
        .instance(instance("hot-b"))
        .instance(instance("cold1"))
        .instance(instance("cold2"))
        .instance(instance("cold3"))
        .service(service("web").spread("instanceId").deployment(50, 200))
        .service(service("api").spread("instanceId").deployment(50, 200))
        .tasks("web", "hot-a", 10)
        .tasks("api", "hot-b", 6)
        .snapshot();
    let protected: Vec<String> = snapshot
        .tasks
        .iter()
        .filter(|t| t.service_name() == Some("web"))
        .map(|t| t.task_arn.clone())
        .collect();
    // The twin's clock starts a day after the newest registration (2026-11-21T10:00Z); protection for a day more.
    let expires = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .unwrap()
        .to_utc();
    snapshot.protected_tasks = protected
        .iter()
        .map(|arn| ecs_rebalancer::model::ProtectedTask {
            task_arn: arn.clone(),
            protection_enabled: true,
            expiration_date: Some(expires),
        })
        .collect();
    snapshot.save(&dir.join("start.json")).unwrap();
    std::fs::write(dir.join("policy.yaml"), POLICY.to_owned() + policy_extra).unwrap();
    protected
}

/// The stopped tasks' ARNs and services, from the twin; and the protected tasks the twin still has, live.
async fn stopped_and_protected(twin: &TwinServer) -> (Vec<(String, String)>, Vec<String>) {
    let (_, stopped) = stops(twin).await;
    let stopped = stopped
        .iter()
        .map(|t| {
            (
                t["taskArn"].as_str().unwrap().to_owned(),
                t["group"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let snapshot = get_json(&twin.addr, "/__twin/snapshot").await;
    let live: Vec<&str> = snapshot["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["desiredStatus"] == "RUNNING")
        .map(|t| t["taskArn"].as_str().unwrap())
        .collect();
    let protected = snapshot["protectedTasks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["taskArn"].as_str().unwrap())
                .filter(|arn| live.contains(arn))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (stopped, protected)
}

/// Task scale-in protection is read live (GetTaskProtection, through the SDK, from `twin serve`): `once` in
/// `enforce` mode stops the unprotected `api` tasks and never a protected `web` one, though `web`'s instance is
/// the hotter and StopTask itself would stop a protected task.
#[tokio::test]
async fn once_never_stops_a_protected_task() {
    let dir = tempfile::tempdir().unwrap();
    let protected = write_protected_fixture(dir.path(), "");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let (table, _) = table().await;
    let out = once(dir.path(), &twin, &table, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 sent"), "{}", text(&out.stdout));
    let (stopped, still_protected) = stopped_and_protected(&twin).await;
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    for (arn, group) in &stopped {
        assert!(!protected.contains(arn), "a protected task was stopped: {arn}");
        assert_eq!(group, "service:api");
    }
    assert_eq!(
        still_protected.len(),
        protected.len(),
        "every protected task still runs"
    );
    let calls = get_json(&twin.addr, "/__twin/calls").await;
    assert!(calls["GetTaskProtection"].as_u64().unwrap_or(0) >= 1, "{calls}");
}

/// The same under `run`, cycle after cycle (no cooldowns, so it keeps moving `api`): no protected task is stopped.
#[tokio::test]
async fn run_never_stops_a_protected_task() {
    let dir = tempfile::tempdir().unwrap();
    let protected = write_protected_fixture(dir.path(), "  cooldown: {instance: 0s, service: 0s}\n");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "60"]);
    let (table, ledger) = table().await;
    let child = spawn_run(dir.path(), &twin, &table, &[]);
    until(&ledger, Duration::from_secs(40), "four stops over two cycles", |all| {
        all.len() >= 4
    })
    .await;
    let (code, log) = terminate(child);
    assert_eq!(code, Some(0), "{log}");
    let (stopped, still_protected) = stopped_and_protected(&twin).await;
    assert!(stopped.len() >= 4, "{stopped:?}");
    for (arn, group) in &stopped {
        assert!(!protected.contains(arn), "a protected task was stopped: {arn}\n{log}");
        assert_eq!(group, "service:api");
    }
    assert_eq!(
        still_protected.len(),
        protected.len(),
        "every protected task still runs"
    );
}

//! What a production user meets first, end to end in processes (`once`, `run`, `status`; ECS served by `twin serve`,
//! the ledger in DynamoDB on `moto_server`, both on 127.0.0.1): configuration errors stop at once with one line that
//! says what to set; a missing table or cluster is named and leaves nothing behind; a failed read is a failed read;
//! `dry-run` logs every planned move; logs that are JSON are JSON on every line, with one `target` key; a standby
//! replica reads DynamoDB once per third of a lease, counted on moto's own request log; a reload that switches to a
//! metric of actual use reads CloudWatch (served by the twin) without a restart; the metrics server's failures are
//! told: a port already taken stops `run` at once, a failed accept later is logged with the address.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{get_json, moto, StderrLines, TwinServer};
use ecs_rebalancer::ledger::dynamo::{create_table, DynamoLedger};
use ecs_rebalancer::ledger::Ledger as _;
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};

/// Nothing listens on port 9 of the loopback.
const CLOSED: &str = "http://127.0.0.1:9";

/// Longer than any of these commands needs; a command still running then is in a retry loop.
const DEADLINE: Duration = Duration::from_secs(60);

/// Governs every cluster whose name starts with `prod`, so that a mistyped `--cluster prod-…` has a policy and
/// reaches AWS.
fn policy(mode: &str) -> String {
    format!(
        "apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata: {{name: prod}}
spec:
  clusters: [\"prod*\"]
  metric: count
  threshold: {{trigger: 0.2, target: 0.05}}
  mode: {mode}
  interval: 10s
  budgets: {{perCycle: 2, perHour: 100, perService: 100%}}
"
    )
}

/// A hot instance with eight tasks of one service and three empty ones, and a policy in `mode`.
fn write_fixture(dir: &Path, mode: &str) {
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
    std::fs::write(dir.join("policy.yaml"), policy(mode)).unwrap();
}

/// `ecs-rebalancer ARGS` configured the AWS way and nothing else: static credentials and a Region in the
/// environment, empty config and credentials files, no instance metadata; ECS at `ecs`, DynamoDB (and STS) at `dynamodb`.
fn command(dir: &Path, ecs: &str, dynamodb: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"));
    c.current_dir(dir)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", empty_file(dir, "aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", empty_file(dir, "aws-credentials"))
        .env("AWS_ENDPOINT_URL_ECS", ecs)
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        .env("AWS_ENDPOINT_URL_STS", dynamodb)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_ACCOUNT_ID",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "ECS_CLUSTER",
        "ECS_REBALANCER_TABLE",
    ] {
        c.env_remove(name);
    }
    c
}

/// An empty file in `dir`: an AWS config or credentials file that sets nothing.
fn empty_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "").unwrap();
    path
}

fn controller_args<'a>(kind: &'a str, cluster: &'a str, table: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        kind,
        "--policy",
        "policy.yaml",
        "--cluster",
        cluster,
        "--table",
        table,
        "--lease-duration",
        "3s",
    ];
    if kind == "run" {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    args
}

/// Waits for `child` to exit; one still running at [`DEADLINE`] is killed and the test fails.
fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {DEADLINE:?} (a retry loop?):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Stderr's lines, each parsed as the JSON log line it must be.
fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

/// The command ended with exit 1 and exactly one line on stderr, a JSON log line; returns its message.
fn one_error_line(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let line = &json_lines(out)[0];
    assert_eq!(line["level"], "ERROR", "{line}");
    line["message"].as_str().unwrap().to_owned()
}

/// A fresh table on the test binary's moto server.
async fn table() -> (String, DynamoLedger) {
    let conf = ecs_rebalancer::aws::local(&moto::endpoint());
    let name = moto::unique("ops");
    create_table(&conf, &name).await.unwrap();
    (name.clone(), DynamoLedger::from_conf(&conf, &name))
}

fn mutations(calls: &Value) -> u64 {
    ["StopTask", "UpdateService", "UpdateContainerInstancesState"]
        .iter()
        .map(|op| calls[op].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn without_a_region_once_and_run_stop_at_once_with_one_short_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    for kind in ["once", "run"] {
        let out = finish(
            command(dir.path(), CLOSED, CLOSED, &controller_args(kind, "prod", "t"))
                .env_remove("AWS_REGION")
                .spawn()
                .unwrap(),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{kind}: one line: {stderr}");
        let line = stderr.lines().next().unwrap();
        assert!(
            line.chars().count() <= 200,
            "{kind}: {} characters: {line}",
            line.chars().count()
        );
        assert!(line.contains("AWS_REGION"), "{kind}: names the setting: {line}");
        assert!(
            !line.contains("DispatchFailure") && !line.contains("unavailable"),
            "{kind}: {line}"
        );
        assert!(out.stdout.is_empty(), "{kind}: {}", text(&out.stdout));
    }
    // With instance metadata on (as in a container) the SDK warns at every failed step of its Region chain, with its
    // error dump: without RUST_LOG asking for them, those stay out, and the one line is all.
    let out = finish(
        command(dir.path(), CLOSED, CLOSED, &controller_args("once", "prod", "t"))
            .env_remove("AWS_REGION")
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .env_remove("RUST_LOG")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", CLOSED)
            .spawn()
            .unwrap(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("AWS_REGION"), "{stderr}");
}

#[test]
fn without_credentials_once_and_run_stop_at_once_with_one_line_naming_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    for kind in ["once", "run"] {
        let out = finish(
            command(dir.path(), CLOSED, CLOSED, &controller_args(kind, "prod", "t"))
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .spawn()
                .unwrap(),
        );
        let message = one_error_line(&out);
        assert!(
            message.contains("AWS_ACCESS_KEY_ID") && message.contains("AWS_PROFILE"),
            "{kind}: {message}"
        );
        assert!(message.len() <= 200, "{kind}: {message}");
    }
}

#[test]
fn a_malformed_endpoint_stops_at_once_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let out = finish(
        command(dir.path(), CLOSED, "not a url", &controller_args("once", "prod", "t"))
            .spawn()
            .unwrap(),
    );
    let message = one_error_line(&out);
    assert!(message.contains("AWS_ENDPOINT_URL_DYNAMODB"), "{message}");
}

#[tokio::test]
async fn a_missing_table_is_named_once_and_run_stops() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let missing = moto::unique("nope");
    for kind in ["once", "run"] {
        let out = finish(
            command(
                dir.path(),
                &twin.url(),
                &moto::endpoint(),
                &controller_args(kind, "prod", &missing),
            )
            .spawn()
            .unwrap(),
        );
        let message = one_error_line(&out);
        assert!(
            message.contains(&format!("{missing:?} does not exist")),
            "{kind}: {message}"
        );
        assert!(
            message.contains(&format!("ecs-rebalancer init --table {missing}")),
            "{kind}: says how to make it: {message}"
        );
    }
    assert_eq!(mutations(&get_json(&twin.addr, "/__twin/calls").await), 0);
}

/// A mistyped cluster must not leave a lease item behind: `status` would show a leader for a cluster that does not
/// exist.
#[tokio::test]
async fn a_wrong_cluster_is_named_and_leaves_no_lease_behind() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let (table, ledger) = table().await;
    for kind in ["once", "run"] {
        let out = finish(
            command(
                dir.path(),
                &twin.url(),
                &moto::endpoint(),
                &controller_args(kind, "prod-typo", &table),
            )
            .spawn()
            .unwrap(),
        );
        let message = one_error_line(&out);
        assert!(message.contains("cluster \"prod-typo\""), "{kind}: {message}");
        assert!(message.contains("ClusterNotFoundException"), "{kind}: {message}");
    }
    assert_eq!(ledger.read_lease("prod-typo").await.unwrap(), None);
    let status = finish(
        command(
            dir.path(),
            &twin.url(),
            &moto::endpoint(),
            &["status", "--cluster", "prod-typo", "--table", &table, "-o", "json"],
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["leader"], Value::Null, "{status:#}");
    assert_eq!(mutations(&get_json(&twin.addr, "/__twin/calls").await), 0);
}

/// "Outcome unknown" is only for mutations: a read ECS never answered is a failed read, named, on one line.
#[tokio::test]
async fn a_failed_read_is_reported_as_a_failed_read() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let (table, _) = table().await;
    let out = finish(
        command(
            dir.path(),
            CLOSED,
            &moto::endpoint(),
            &controller_args("once", "prod", &table),
        )
        .spawn()
        .unwrap(),
    );
    let message = one_error_line(&out);
    assert!(message.contains("request failed: ListContainerInstances"), "{message}");
    assert!(!message.contains("outcome unknown"), "{message}");
    assert!(!message.contains("DispatchFailure("), "no debug dump: {message}");
}

/// docs/policy.md: `dry-run` "plans and logs every move and carries none out".
#[tokio::test]
async fn dry_run_logs_every_planned_move_and_once_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "dry-run");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let (table, ledger) = table().await;
    let out = finish(
        command(
            dir.path(),
            &twin.url(),
            &moto::endpoint(),
            &controller_args("once", "prod", &table),
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let planned: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|l| l["message"] == "planned (dry-run: not sent)")
        .collect();
    assert_eq!(planned.len(), 2, "the budget's two moves: {}", text(&out.stderr));
    for line in &planned {
        assert!(line["action"].as_str().unwrap().starts_with("stop-task:"), "{line}");
        assert!(line["resource"].as_str().unwrap().contains(":task/"), "{line}");
        assert!(line["reason"].as_str().unwrap().contains("above the mean"), "{line}");
        assert!(line["landing"].as_str().unwrap().contains("/cold"), "{line}");
    }
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("stop-task ").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("planned, not sent (dry-run)").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("why: ").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("lands on any of: cold").count(), 2, "{stdout}");
    assert_eq!(mutations(&get_json(&twin.addr, "/__twin/calls").await), 0);
    assert!(ledger.actions("prod").await.unwrap().is_empty());
}

/// `jq` keeps one of two equal keys: the action's resource and tracing's module path must not share `target`.
#[tokio::test]
async fn an_actions_log_lines_name_its_resource_and_keep_one_target_key() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let (table, _) = table().await;
    let out = finish(
        command(
            dir.path(),
            &twin.url(),
            &moto::endpoint(),
            &controller_args("once", "prod", &table),
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let claimed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("\"message\":\"claimed\""))
        .collect();
    assert_eq!(claimed.len(), 2, "{stderr}");
    for raw in claimed {
        assert_eq!(raw.matches("\"target\":").count(), 1, "one target key: {raw}");
        let line: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(line["target"], "ecs_rebalancer::reconcile", "{raw}");
        assert!(line["resource"].as_str().unwrap().starts_with("arn:aws:ecs:"), "{raw}");
    }
}

/// When logs are JSON (stderr not a terminal), every stderr line is JSON, the last word of a failure included; on
/// a terminal the same failure is one plain line.
#[tokio::test]
async fn when_logs_are_json_every_stderr_line_is_json_and_on_a_terminal_they_are_text() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let (table, _) = table().await;
    let run = |table: &str| {
        finish(
            command(
                dir.path(),
                &twin.url(),
                &moto::endpoint(),
                &controller_args("once", "prod", table),
            )
            .spawn()
            .unwrap(),
        )
    };

    let ok = run(&table);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(json_lines(&ok).len() > 3);

    let missing = moto::unique("absent");
    let failed = run(&missing);
    assert_eq!(failed.status.code(), Some(1));
    let last = json_lines(&failed).pop().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["exit"], 1);

    std::fs::write(
        dir.path().join("policy.yaml"),
        policy("enforce").replace("metric:", "metrik:"),
    )
    .unwrap();
    let bad_input = run(&table);
    assert_eq!(bad_input.status.code(), Some(2));
    let last = json_lines(&bad_input).pop().unwrap();
    assert!(last["message"].as_str().unwrap().contains("policy.yaml:6:3"), "{last}");
    std::fs::write(dir.path().join("policy.yaml"), policy("enforce")).unwrap();

    // A pseudo-terminal (util-linux's `script`): text, one plain line.
    let line = format!(
        "{} {}",
        env!("CARGO_BIN_EXE_ecs-rebalancer"),
        controller_args("once", "prod", &missing).join(" ")
    );
    let configured = command(dir.path(), &twin.url(), &moto::endpoint(), &[]);
    let mut on_terminal = Command::new("script");
    on_terminal.args(["-qec", &line, "/dev/null"]).current_dir(dir.path());
    for (k, v) in configured.get_envs() {
        match v {
            Some(v) => on_terminal.env(k, v),
            None => on_terminal.env_remove(k),
        };
    }
    let out = on_terminal.output().expect("util-linux's script runs");
    let screen = text(&out.stdout);
    assert!(
        screen.contains(&format!("error: ledger table: {missing:?} does not exist")),
        "{screen:?}"
    );
    assert!(!screen.contains("{\"timestamp\""), "{screen:?}");
}

/// A replica that is not leading reads the lease once per round, a round every third of the lease: with a 3 s lease,
/// about one DynamoDB request a second, counted on moto's own request log. (It used to poll every 50 ms.)
#[tokio::test]
async fn a_follower_makes_at_most_one_dynamodb_request_per_third_of_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let dynamodb = moto::Logged::start();
    let conf = ecs_rebalancer::aws::local(&dynamodb.endpoint);
    create_table(&conf, "ledger").await.unwrap();
    // Another replica leads, and promised a whole hour: this one follows throughout.
    let ledger = DynamoLedger::from_conf(&conf, "ledger");
    let lease = common::lease_held_for_an_hour_by_another();
    assert!(ledger.write_lease("prod", &lease, None).await.unwrap());

    let mut follower = command(
        dir.path(),
        &twin.url(),
        &dynamodb.endpoint,
        &controller_args("run", "prod", "ledger"),
    )
    .spawn()
    .unwrap();
    // Past its start (the first lease reads), then a window of nine rounds.
    let stderr = follower.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = dynamodb.requests();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let during = dynamodb.requests() - before;
    common::sigterm(&follower);
    let status = follower.wait().unwrap();
    let log = lines.join().unwrap().join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        (3..=12).contains(&during),
        "{during} DynamoDB requests in 9 s with a 3 s lease (a round a second):\n{log}"
    );
    assert!(!log.contains("\"leading\""), "it followed throughout:\n{log}");
    assert_eq!(mutations(&get_json(&twin.addr, "/__twin/calls").await), 0);
}

/// A reload that switches the metric to one of actual use (`count` → `cpu-available`) reads CloudWatch (the twin's
/// GetMetricData) from the next cycle on, with no restart; under `count` CloudWatch is never asked. (`run` used to
/// pick its CloudWatch client once, from the policy at start-up, and after such a switch halted every cycle for want
/// of utilisation.)
#[tokio::test]
async fn a_reload_that_switches_to_a_metric_of_actual_use_reads_cloudwatch_from_the_next_cycle() {
    let dir = tempfile::tempdir().unwrap();
    // Balanced by task count (two tasks each), not by CPU use: one instance is busy.
    let mut snapshot = ClusterBuilder::new("prod")
        .instance(instance("busy"))
        .instance(instance("idle1"))
        .instance(instance("idle2"))
        .instance(instance("idle3"))
        .service(service("web").spread("instanceId").deployment(50, 200))
        .tasks("web", "busy", 2)
        .tasks("web", "idle1", 2)
        .tasks("web", "idle2", 2)
        .tasks("web", "idle3", 2)
        .snapshot();
    for (n, i) in snapshot.container_instances.iter().enumerate() {
        let cpu = if n == 0 { 0.9 } else { 0.1 };
        snapshot.utilization.insert(
            i.container_instance_arn.clone(),
            ecs_rebalancer::model::Utilization {
                cpu: Some(cpu),
                memory: Some(0.3),
            },
        );
    }
    snapshot.save(&dir.path().join("start.json")).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), policy("dry-run")).unwrap();
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let (table, _) = table().await;
    let mut child = command(
        dir.path(),
        &twin.url(),
        &moto::endpoint(),
        &controller_args("run", "prod", &table),
    )
    .env("AWS_ENDPOINT_URL_CLOUDWATCH", twin.url())
    .spawn()
    .unwrap();
    let lines = StderrLines::follow(&mut child);
    let metric_reads = || async { get_json(&twin.addr, "/__twin/calls").await["GetMetricData"].as_u64() };

    let (_, first) = lines.wait_for(0, "cycle", Duration::from_secs(20)).await;
    assert_eq!(first["status"], "Balanced", "{first}");
    assert_eq!(metric_reads().await, None, "no CloudWatch call for `count`");

    std::fs::write(
        dir.path().join("policy.yaml"),
        policy("dry-run").replace("metric: count", "metric: cpu-available"),
    )
    .unwrap();
    let (reloaded, _) = lines.wait_for(0, "policy reloaded", Duration::from_secs(10)).await;
    let (_, next) = lines.wait_for(reloaded, "cycle", Duration::from_secs(30)).await;
    let summary = next["summary"].as_str().unwrap();
    assert!(!summary.contains("no cpu-available data"), "{next}");
    assert_ne!(next["status"], "Halted", "{next}");
    assert!(
        next["score"].as_f64().unwrap() > 1.0,
        "scored on CPU use (0.9 against 0.1): {next}"
    );
    assert!(metric_reads().await >= Some(1), "CloudWatch read");

    common::sigterm(&child);
    assert_eq!(finish(child).status.code(), Some(0));
}

/// `run` binds `--listen` before anything else: a port already taken stops start-up at once, exit 1, with one line
/// naming the address (AWS is nowhere here: no request was needed to say so).
#[test]
fn run_on_a_port_already_taken_stops_at_once_naming_the_address() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "enforce");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut args = controller_args("run", "prod", "t");
    let listen = args.iter().position(|a| *a == "--listen").unwrap();
    args[listen + 1] = &addr;
    let out = finish(command(dir.path(), CLOSED, CLOSED, &args).spawn().unwrap());
    let message = one_error_line(&out);
    assert!(message.contains(&format!("--listen {addr}")), "{message}");
    assert!(message.contains("/metrics"), "{message}");
    assert!(message.to_lowercase().contains("in use"), "{message}");
    assert!(message.len() <= 200, "{message}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    drop(taken);
}

/// After start-up, an error of the metrics server is logged, with its address, and the server goes on. Here `run`
/// runs out of file descriptors (its limit lowered to 0 with util-linux's `prlimit`) while a client connects.
#[tokio::test]
async fn a_metrics_server_error_after_start_up_is_logged_with_the_address_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "dry-run");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0"]);
    let (table, _) = table().await;
    let mut child = command(
        dir.path(),
        &twin.url(),
        &moto::endpoint(),
        &controller_args("run", "prod", &table),
    )
    .spawn()
    .unwrap();
    let lines = StderrLines::follow(&mut child);
    let (_, serving) = lines
        .wait_for(0, "serving /metrics, /healthz, /readyz", Duration::from_secs(20))
        .await;
    let addr = serving["addr"].as_str().unwrap().to_owned();
    let pid = child.id().to_string();
    let prlimit = |args: &[&str]| {
        let out = Command::new("prlimit")
            .args(["--pid", &pid])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "prlimit {args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let soft = prlimit(&["--nofile", "--noheadings", "--raw", "--output", "SOFT"]);

    prlimit(&["--nofile=0:"]);
    let waiting = std::net::TcpStream::connect(&addr).unwrap();
    let (_, error) = lines
        .wait_for(
            0,
            "metrics server cannot accept a connection; retrying every second",
            Duration::from_secs(10),
        )
        .await;
    prlimit(&[&format!("--nofile={soft}:")]);
    assert_eq!(error["level"], "ERROR", "{error}");
    assert_eq!(error["addr"], addr.as_str(), "{error}");
    assert!(error["error"].as_str().unwrap().contains("os error 24"), "{error}");
    assert_eq!(common::get(&addr, "/healthz").await, (200, "ok\n".into()));
    drop(waiting);

    common::sigterm(&child);
    assert_eq!(finish(child).status.code(), Some(0));
}

/// A SIGTERM while the first cycle is still running (ECS answering slowly) finishes that cycle and releases the
/// lease: the handler is installed at start-up, not only once `run` first waits between steps.
#[tokio::test]
async fn a_sigterm_during_the_first_cycle_finishes_it_and_releases_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path(), "dry-run");
    let twin = TwinServer::start(&dir.path().join("start.json"), &["--tick", "0", "--latency", "500ms"]);
    let (table, _) = table().await;
    let mut child = command(
        dir.path(),
        &twin.url(),
        &moto::endpoint(),
        &controller_args("run", "prod", &table),
    )
    .spawn()
    .unwrap();
    let lines = StderrLines::follow(&mut child);
    let (leading, _) = lines.wait_for(0, "leading", Duration::from_secs(20)).await;
    common::sigterm(&child);
    assert_eq!(
        finish(child).status.code(),
        Some(0),
        "killed by the signal, not shut down"
    );
    let (cycle, _) = lines.wait_for(leading, "cycle", Duration::from_secs(5)).await;
    lines
        .wait_for(cycle, "shutting down: releasing the lease", Duration::from_secs(5))
        .await;
}

/// An empty cluster name (`--cluster ""`, or an `ECS_CLUSTER` set to nothing) is refused as bad input before any
/// call: it would otherwise read as "no replica has ever run".
#[test]
fn an_empty_cluster_name_is_refused_as_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        ["status", "--table", "t", "--cluster", ""],
        ["snapshot", "--cluster", " ", "-o", "x.json"],
    ] {
        let (code, _, stderr) = common::cli(dir.path(), &args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("--cluster") && stderr.contains("must not be empty"),
            "{stderr}"
        );
    }
}

//! The twin as a local ECS for any client: the AWS CLI and a boto3 script drive `twin serve` (with `--tick`, so
//! simulated minutes pass in seconds of wall time) and see ECS's behaviour: pagination over more than 100 items,
//! a drain whose service tasks are replaced elsewhere within the deployment bounds while standalone tasks stay, a
//! stopped task replaced by the service's strategy, a forced deployment that replaces every task, the query
//! language filter, attributes and tags. `scripts/test.sh` installs the AWS CLI and boto3 through pip when missing.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{get_json, TwinServer};
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};

/// Four instances; `web` (8 tasks, instance spread, 50/200) and `api` (instance spread: 3 on b, 1 on c and d, none
/// on a); a standalone `batch` task on a; 120 small `bulk` tasks, so ListTasks has more than one page; tags on
/// `web`; `stack=prod` on a and b.
fn fixture(dir: &Path) -> std::path::PathBuf {
    let mut b = ClusterBuilder::new("local")
        .instance(instance("a").cpu(8192).memory(32768).attr("stack", "prod"))
        .instance(instance("b").cpu(8192).memory(32768).attr("stack", "prod"))
        .instance(instance("c").cpu(8192).memory(32768))
        .instance(instance("d").cpu(8192).memory(32768))
        .service(
            service("web")
                .spread("instanceId")
                .deployment(50, 200)
                .tag("team", "storefront"),
        )
        .service(service("api").spread("instanceId").deployment(100, 200))
        .service(service("bulk").cpu(8).memory(16))
        .standalone_task("batch", "a", 256, 512)
        .tasks("api", "b", 3)
        .tasks("api", "c", 1)
        .tasks("api", "d", 1);
    for i in ["a", "b", "c", "d"] {
        b = b.tasks("web", i, 2).tasks("bulk", i, 30);
    }
    let path = dir.join("local.json");
    b.snapshot().save(&path).unwrap();
    path
}

/// `aws ecs ARGS --cluster local --output json` against the twin; the parsed output, or the error text.
fn aws(twin: &TwinServer, args: &[&str]) -> Result<Value, String> {
    let mut with_cluster = args.to_vec();
    with_cluster.extend(["--cluster", "local"]);
    aws_cli(twin, &with_cluster)
}

/// `aws ecs ARGS --output json` against the twin, for calls that take no cluster.
fn aws_cli(twin: &TwinServer, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("aws")
        .arg("ecs")
        .args(args)
        .args([
            "--endpoint-url",
            &twin.url(),
            "--region",
            "eu-west-1",
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the AWS CLI runs (scripts/test.sh installs it)");
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        })
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn boto3(twin: &TwinServer, scenario: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/boto3_drive.py");
    let out = Command::new("python3")
        .args([script, &twin.url(), "local", scenario])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn arn_of(twin: &TwinServer, name: &str) -> String {
    let listed = aws(twin, &["list-container-instances"]).unwrap();
    listed["containerInstanceArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .find(|a| a.ends_with(&format!("/{name}")))
        .unwrap()
}

fn count(v: &Value, key: &str) -> usize {
    v[key].as_array().map_or(0, Vec::len)
}

#[test]
fn the_aws_cli_pages_filters_and_reads_tags_and_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let twin = TwinServer::start(&fixture(dir.path()), &["--tick", "0"]);

    // 8 + 5 + 120 + 1 = 134 tasks: the CLI follows nextToken on its own, whatever the page size.
    assert_eq!(count(&aws(&twin, &["list-tasks"]).unwrap(), "taskArns"), 134);
    assert_eq!(
        count(&aws(&twin, &["list-tasks", "--page-size", "40"]).unwrap(), "taskArns"),
        134
    );
    let first = aws(&twin, &["list-tasks", "--max-items", "100"]).unwrap();
    assert_eq!(count(&first, "taskArns"), 100);
    assert!(first["NextToken"].is_string(), "{first}");
    assert_eq!(
        count(
            &aws(&twin, &["list-tasks", "--service-name", "api"]).unwrap(),
            "taskArns"
        ),
        5
    );
    assert_eq!(
        count(&aws(&twin, &["list-tasks", "--family", "batch"]).unwrap(), "taskArns"),
        1
    );

    // The cluster query language, reusing the placement engine's parser.
    let prod = aws(
        &twin,
        &["list-container-instances", "--filter", "attribute:stack == prod"],
    )
    .unwrap();
    assert_eq!(count(&prod, "containerInstanceArns"), 2);
    let busy = aws(
        &twin,
        &["list-container-instances", "--filter", "task:group == service:api"],
    )
    .unwrap();
    assert_eq!(count(&busy, "containerInstanceArns"), 3, "b, c and d run api");
    let e = aws(&twin, &["list-container-instances", "--filter", "attribute:stack =="]).unwrap_err();
    assert!(e.contains("InvalidParameterException"), "{e}");

    let clusters = aws_cli(&twin, &["list-clusters"]).unwrap();
    assert_eq!(count(&clusters, "clusterArns"), 1);
    let described = aws_cli(&twin, &["describe-clusters", "--clusters", "local"]).unwrap();
    assert_eq!(described["clusters"][0]["registeredContainerInstancesCount"], 4);
    assert_eq!(described["clusters"][0]["activeServicesCount"], 3);

    let web = aws(&twin, &["describe-services", "--services", "web"]).unwrap();
    let web_arn = web["services"][0]["serviceArn"].as_str().unwrap().to_owned();
    let tags = aws_cli(&twin, &["list-tags-for-resource", "--resource-arn", &web_arn]).unwrap();
    assert_eq!(
        tags["tags"],
        serde_json::json!([{"key": "team", "value": "storefront"}])
    );

    let c = arn_of(&twin, "c");
    aws(
        &twin,
        &[
            "put-attributes",
            "--attributes",
            &format!("name=team,value=blue,targetId={c}"),
        ],
    )
    .unwrap();
    let listed = aws(
        &twin,
        &[
            "list-attributes",
            "--target-type",
            "container-instance",
            "--attribute-name",
            "team",
        ],
    )
    .unwrap();
    assert_eq!(
        listed["attributes"],
        serde_json::json!([{"name": "team", "value": "blue", "targetType": "container-instance", "targetId": c}])
    );
    let blue = aws(
        &twin,
        &["list-container-instances", "--filter", "attribute:team == blue"],
    )
    .unwrap();
    assert_eq!(count(&blue, "containerInstanceArns"), 1);

    let e = aws_cli(&twin, &["list-account-settings"]).unwrap_err();
    assert!(
        e.contains("UnknownOperationException") && e.contains("ListAccountSettings"),
        "{e}"
    );
}

/// A drain, through the AWS CLI: web's two tasks on `a` are replaced on other instances while web never drops
/// below its floor (4 of 8) and never exceeds 200 %; the standalone task stays; simulated minutes in seconds.
#[test]
fn the_aws_cli_drains_an_instance_and_standalone_tasks_stay() {
    let dir = tempfile::tempdir().unwrap();
    let twin = TwinServer::start(&fixture(dir.path()), &["--tick", "60"]);
    let a = arn_of(&twin, "a");
    let set = aws(
        &twin,
        &[
            "update-container-instances-state",
            "--container-instances",
            &a,
            "--status",
            "DRAINING",
        ],
    )
    .unwrap();
    assert_eq!(set["containerInstances"][0]["status"], "DRAINING");
    let start = Instant::now();
    let on_a = || {
        aws(&twin, &["list-tasks", "--container-instance", &a]).unwrap()["taskArns"]
            .as_array()
            .unwrap()
            .len()
    };
    // Left on a: the standalone task only (web's 2 and bulk's 30 go elsewhere).
    while on_a() != 1 {
        assert!(start.elapsed() < Duration::from_secs(30), "the drain did not finish");
        std::thread::sleep(Duration::from_millis(300));
    }
    let left = aws(&twin, &["list-tasks", "--container-instance", &a]).unwrap();
    let left = aws(
        &twin,
        &["describe-tasks", "--tasks", left["taskArns"][0].as_str().unwrap()],
    )
    .unwrap();
    assert_eq!(left["tasks"][0]["group"], "family:batch");
    assert_eq!(left["tasks"][0]["lastStatus"], "RUNNING");
    let web = aws(&twin, &["describe-services", "--services", "web"]).unwrap();
    assert_eq!(web["services"][0]["runningCount"], 8);
    let stats = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(get_json(&twin.addr, "/__twin/stats"));
    assert_eq!(stats["stats"]["floorViolations"], 0, "{stats}");
}

/// boto3: a stopped task of a service spread by instance is replaced on the instance with the fewest of its tasks.
#[test]
fn boto3_stops_a_task_and_the_replacement_follows_the_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let twin = TwinServer::start(&fixture(dir.path()), &["--tick", "60"]);
    let seen = boto3(&twin, "stop-task");
    assert_eq!(seen["stoppedReason"], "boto3 test");
    assert_eq!(seen["running"], 5);
    assert_eq!(
        seen["replacementOn"],
        serde_json::json!(["a"]),
        "a has no api task: spread puts it there"
    );
}

/// boto3: a forced deployment replaces every task of the service.
#[test]
fn boto3_forces_a_deployment_and_every_task_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let twin = TwinServer::start(&fixture(dir.path()), &["--tick", "60"]);
    let seen = boto3(&twin, "redeploy");
    assert_eq!(
        (
            seen["replaced"].as_u64(),
            seen["kept"].as_u64(),
            seen["running"].as_u64()
        ),
        (Some(8), Some(0), Some(8))
    );
}

#[test]
fn boto3_pages_through_lists() {
    let dir = tempfile::tempdir().unwrap();
    let twin = TwinServer::start(&fixture(dir.path()), &["--tick", "0"]);
    let seen = boto3(&twin, "paginate");
    assert_eq!(seen["tasks"], 134);
    assert_eq!(seen["distinctTasks"], 134);
    assert_eq!(seen["taskPages"], 6, "134 in pages of 25");
    assert_eq!(
        (seen["instances"].as_u64(), seen["instancePages"].as_u64()),
        (Some(4), Some(2))
    );
}

/// `--tick 60`: a minute of the twin's time per wall-clock second, so a 10-minute scenario plays in about 10 s.
/// `--state-out` writes the state on SIGTERM.
#[test]
fn tick_sets_the_pace_and_state_out_writes_the_end_state() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("end.json");
    let mut twin = TwinServer::start(
        &fixture(dir.path()),
        &["--tick", "1m", "--state-out", out.to_str().unwrap()],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clock = |v: Value| chrono::DateTime::parse_from_rfc3339(v["now"].as_str().unwrap()).unwrap();
    let before = clock(rt.block_on(get_json(&twin.addr, "/__twin/stats")));
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let after = clock(rt.block_on(get_json(&twin.addr, "/__twin/stats")));
    let simulated = (after - before).num_seconds() as f64;
    let per_second = simulated / wall.elapsed().as_secs_f64();
    assert!(
        (40.0..=75.0).contains(&per_second),
        "{simulated} s simulated in {:?}",
        wall.elapsed()
    );

    aws(&twin, &["update-service", "--service", "api", "--desired-count", "7"]).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    twin.terminate();
    let end = ecs_rebalancer::model::Snapshot::load(&out).unwrap();
    let api = end.services.iter().find(|s| s.service_name == "api").unwrap();
    assert_eq!(
        (api.desired_count, api.running_count),
        (7, 7),
        "the scale-out played out"
    );
}

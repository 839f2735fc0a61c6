//! The deployment artefacts of `deploy/` against the program: the IAM policy allows exactly the AWS operations a
//! full run makes, and the CloudFormation stack's table is the table `init` creates. (The container command lines of
//! the stack are parsed with the CLI's own definition in `src/cli/mod.rs`'s tests, where that definition lives.)

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::moto::{self, Logged};
use common::TwinServer;
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};

/// The CloudFormation template as JSON values (plain YAML: intrinsic functions in their long form).
fn template() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/cloudformation/ecs-rebalancer.yaml"
    ))
    .unwrap();
    ecs_rebalancer::policy::spanned::parse(&text).unwrap()[0].to_json()
}

/// The IAM policy document, as operators get it.
fn iam_policy() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/iam-policy.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every action the policy allows (`service:Action`), from the statements whose `Sid` is not in `leave_out`.
fn allowed(policy: &Value, leave_out: &[&str]) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        if leave_out.contains(&statement["Sid"].as_str().unwrap_or("")) {
            continue;
        }
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        match &statement["Action"] {
            Value::String(a) => {
                all.insert(a.clone());
            }
            Value::Array(list) => all.extend(list.iter().map(|a| a.as_str().unwrap().to_owned())),
            other => panic!("Action {other}"),
        }
    }
    all
}

/// What IAM authorises a made operation as: itself, but a `TransactWriteItems` as the item actions it holds
/// (DynamoDB's authorization reference), and `sts:GetCallerIdentity` as nothing (it needs no permission).
fn authorised_as(operation: &str) -> Vec<String> {
    match operation.split_once(' ') {
        Some(("dynamodb:TransactWriteItems", items)) => items
            .split(',')
            .map(|item| match item {
                "Put" => "dynamodb:PutItem".to_owned(),
                "Update" => "dynamodb:UpdateItem".to_owned(),
                "Delete" => "dynamodb:DeleteItem".to_owned(),
                "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
                other => panic!("a transaction item {other}"),
            })
            .collect(),
        _ if operation == "sts:GetCallerIdentity" => Vec::new(),
        _ => vec![operation.to_owned()],
    }
}

/// The difference between what a run made and what the policy allows, said as a person would fix it; empty when
/// they are equal.
fn mismatch(made: &BTreeSet<String>, allowed: &BTreeSet<String>) -> Vec<String> {
    let needed: BTreeSet<String> = made.iter().flat_map(|op| authorised_as(op)).collect();
    let mut out: Vec<String> = needed
        .difference(allowed)
        .map(|a| format!("{a} is made but not allowed: add it to deploy/iam-policy.json"))
        .collect();
    out.extend(
        allowed
            .difference(&needed)
            .map(|a| format!("{a} is allowed but never made: remove it from deploy/iam-policy.json")),
    );
    out
}

const POLICY: &str = "apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata: {name: NAME}
spec:
  clusters: [NAME]
  metric: count
  threshold: {trigger: 0.2, target: 0.05}
  mode: enforce
  interval: 10s
  actions: [ACTIONS]
  budgets: {maxUnavailable: 10, perHour: 100, perService: 100%, concurrentDrains: 1}
";

/// A cluster named `name` with a hot instance (eight tasks of `web`) and three empty ones, served by a twin; and a
/// policy for it allowing only `actions`.
fn cluster(dir: &Path, name: &str, min_healthy: u32, actions: &str) -> TwinServer {
    let snapshot = dir.join(format!("{name}.json"));
    ClusterBuilder::new(name)
        .instance(instance("hot"))
        .instance(instance("cold1"))
        .instance(instance("cold2"))
        .instance(instance("cold3"))
        .service(service("web").spread("instanceId").deployment(min_healthy, 200))
        .tasks("web", "hot", 8)
        .snapshot()
        .save(&snapshot)
        .unwrap();
    std::fs::write(
        dir.join(format!("{name}.yaml")),
        POLICY.replace("NAME", name).replace("ACTIONS", actions),
    )
    .unwrap();
    TwinServer::start(&snapshot, &["--speed", "60"])
}

/// `ecs-rebalancer ARGS` as the production tests run it, with DynamoDB and STS on `moto` and CloudWatch on the twin.
fn command(dir: &Path, moto: &str, twin: &TwinServer, args: &[&str]) -> Command {
    let mut c = crate::production::command(dir, twin, moto, args);
    c.env("AWS_ENDPOINT_URL_STS", moto)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", twin.url());
    c
}

fn ok(out: Output, what: &str) -> Output {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The ECS (and CloudWatch) operations a twin served, as IAM names them.
async fn twin_operations(twin: &TwinServer) -> BTreeSet<String> {
    let calls = common::get_json(&twin.addr, "/__twin/calls").await;
    calls
        .as_object()
        .unwrap()
        .keys()
        .map(|op| match op.as_str() {
            "GetMetricData" => format!("cloudwatch:{op}"),
            _ => format!("ecs:{op}"),
        })
        .collect()
}

/// `init` (twice), `once` with a stop, `run` with a drain (set DRAINING, then ACTIVE again once it played out), `once` with a
/// redeploy, `status`, and `snapshot --utilization`: every operation they make, on the twins (ECS, CloudWatch) and on
/// moto (DynamoDB, STS) is allowed by `deploy/iam-policy.json`, and every action it allows is made. The optional
/// `PolicyTokenSecret` statement (only for `--policy-token-secret`) is left out of both sides.
#[tokio::test]
async fn the_iam_policy_allows_exactly_the_operations_a_full_run_makes() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Logged::start_logging_operations();
    let table = moto::unique("iam");
    let stops = cluster(dir.path(), "stops", 50, "stop-tasks");
    let drains = cluster(dir.path(), "drains", 50, "drain-instances");
    let redeploys = cluster(dir.path(), "redeploys", 100, "redeploy-services");
    let controller = |kind: &str, name: &str| -> Vec<String> {
        [
            kind,
            "--policy",
            &format!("{name}.yaml"),
            "--cluster",
            name,
            "--table",
            &table,
            "--lease-duration",
            "2s",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run = |twin: &TwinServer, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        command(dir.path(), &moto.endpoint, twin, &args).output().unwrap()
    };

    // `init` twice, as every deploy may run it: the second finds the table and checks its shape (its TTL too).
    for _ in 0..2 {
        ok(
            run(&stops, vec!["init".into(), "--table".into(), table.clone()]),
            "init",
        );
    }
    ok(run(&stops, controller("once", "stops")), "once with a stop");
    ok(run(&redeploys, controller("once", "redeploys")), "once with a redeploy");
    let mut args = controller("run", "drains");
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = command(dir.path(), &moto.endpoint, &drains, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The drain has played out once the hot instance is ACTIVE again (the second UpdateContainerInstancesState).
    let start = std::time::Instant::now();
    loop {
        let calls = common::get_json(&drains.addr, "/__twin/calls").await;
        if calls["UpdateContainerInstancesState"].as_u64() >= Some(2) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the drain settles: {calls}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    common::sigterm(&child);
    ok(child.wait_with_output().unwrap(), "run with a drain");
    ok(
        run(
            &stops,
            vec![
                "status".into(),
                "--cluster".into(),
                "stops".into(),
                "--table".into(),
                table.clone(),
            ],
        ),
        "status",
    );
    let out = dir.path().join("captured.json");
    ok(
        run(
            &stops,
            vec![
                "snapshot".into(),
                "--cluster".into(),
                "stops".into(),
                "--utilization".into(),
                "-o".into(),
                out.display().to_string(),
            ],
        ),
        "snapshot --utilization",
    );

    let mut made: BTreeSet<String> = moto.operations().into_iter().collect();
    for twin in [&stops, &drains, &redeploys] {
        made.extend(twin_operations(twin).await);
    }
    for kind in [
        "ecs:StopTask",
        "ecs:UpdateService",
        "ecs:UpdateContainerInstancesState",
        "cloudwatch:GetMetricData",
    ] {
        assert!(made.contains(kind), "the run made no {kind}: {made:?}");
    }
    let problems = mismatch(&made, &allowed(&iam_policy(), &["PolicyTokenSecret"]));
    assert!(problems.is_empty(), "{}\n(made: {made:?})", problems.join("\n"));
}

/// The check above is not vacuous: an operation the code starts making, or an action removed from the policy, is
/// a mismatch, and so is an action the policy allows that the code no longer makes.
#[test]
fn the_equality_fails_when_the_code_makes_more_or_the_policy_allows_less_or_more() {
    let policy = iam_policy();
    let allowed = allowed(&policy, &["PolicyTokenSecret"]);
    let made: BTreeSet<String> = allowed.iter().cloned().collect();
    assert!(mismatch(&made, &allowed).is_empty());

    let mut more = made.clone();
    more.insert("ecs:RunTask".into());
    assert_eq!(
        mismatch(&more, &allowed),
        ["ecs:RunTask is made but not allowed: add it to deploy/iam-policy.json"]
    );

    let mut less = allowed.clone();
    less.remove("ecs:StopTask");
    assert_eq!(
        mismatch(&made, &less),
        ["ecs:StopTask is made but not allowed: add it to deploy/iam-policy.json"]
    );

    let mut fewer = made.clone();
    fewer.remove("ecs:GetTaskProtection");
    assert_eq!(
        mismatch(&fewer, &allowed),
        ["ecs:GetTaskProtection is allowed but never made: remove it from deploy/iam-policy.json"]
    );

    // A transaction is authorised as the item actions it holds; STS's GetCallerIdentity needs no permission.
    assert_eq!(
        authorised_as("dynamodb:TransactWriteItems ConditionCheck,Put"),
        ["dynamodb:ConditionCheckItem", "dynamodb:PutItem"]
    );
    assert!(authorised_as("sts:GetCallerIdentity").is_empty());
}

/// The stack's table is the table `init` creates: `init` runs on moto, and its key schema, attribute types, billing
/// mode and TTL attribute are compared with the template's table.
#[tokio::test]
async fn the_stack_table_is_the_table_init_creates() {
    let conf = ecs_rebalancer::aws::local(&moto::endpoint());
    let name = moto::unique("shape");
    ecs_rebalancer::ledger::dynamo::create_table(&conf, &name)
        .await
        .unwrap();
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let made = client.describe_table().table_name(&name).send().await.unwrap();
    let made = made.table().unwrap();
    let ttl = client.describe_time_to_live().table_name(&name).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    let init = serde_json::json!({
        "KeySchema": made.key_schema().iter()
            .map(|k| serde_json::json!({"AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str()}))
            .collect::<Vec<_>>(),
        "AttributeDefinitions": made.attribute_definitions().iter()
            .map(|a| serde_json::json!({"AttributeName": a.attribute_name(), "AttributeType": a.attribute_type().as_str()}))
            .collect::<Vec<_>>(),
        "BillingMode": made.billing_mode_summary().and_then(|b| b.billing_mode()).map(|b| b.as_str()),
        "TimeToLiveSpecification": {"AttributeName": ttl.attribute_name(), "Enabled": "true"},
    });

    let t = template();
    let tables: Vec<&Value> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::DynamoDB::Table")
        .collect();
    assert_eq!(tables.len(), 1, "one table in the stack");
    let p = &tables[0]["Properties"];
    let stack = serde_json::json!({
        "KeySchema": p["KeySchema"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "BillingMode": p["BillingMode"],
        "TimeToLiveSpecification": p["TimeToLiveSpecification"],
    });
    assert_eq!(
        stack, init,
        "the stack's table (left) differs from what init creates (right)"
    );
    assert_eq!(
        tables[0]["DeletionPolicy"], "Retain",
        "tearing the stack down keeps the ledger"
    );
}

/// A template value as the policy file writes it: `Fn::Sub` strings with the stack's pseudo-parameters turned back
/// into the file's placeholders, and an optional statement (`Fn::If` with `AWS::NoValue`) as the statement.
fn as_in_the_file(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.len() == 1 && o.contains_key("Fn::Sub") => Value::String(
            o["Fn::Sub"]
                .as_str()
                .unwrap()
                .replace("arn:${AWS::Partition}:", "arn:aws:")
                .replace("${AWS::Region}", "${Region}")
                .replace("${AWS::AccountId}", "${AccountId}"),
        ),
        Value::Object(o) if o.len() == 1 && o.contains_key("Fn::If") => as_in_the_file(&o["Fn::If"][1]),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), as_in_the_file(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(as_in_the_file).collect()),
        other => other.clone(),
    }
}

/// The stack's task role grants the statements of `deploy/iam-policy.json`, Sid for Sid, but `Init` (the stack makes
/// the table itself, so the controller never runs `init`).
#[test]
fn the_stack_task_role_has_the_statements_of_the_policy_file() {
    let t = template();
    let role = &t["Resources"]["TaskRole"]["Properties"]["Policies"];
    let in_stack: Vec<Value> = role
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .map(as_in_the_file)
        })
        .collect();
    let in_file: Vec<Value> = iam_policy()["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Sid"] != "Init")
        .cloned()
        .collect();
    let by_sid = |all: &[Value]| -> std::collections::BTreeMap<String, Value> {
        all.iter()
            .map(|s| (s["Sid"].as_str().unwrap().to_owned(), s.clone()))
            .collect()
    };
    assert_eq!(by_sid(&in_stack), by_sid(&in_file));
}

//! The twin behind ECS's JSON 1.1 protocol: pagination, batch limits, error shapes, timestamps, mutations. Driven
//! with raw HTTP/1.1 on 127.0.0.1 so the wire format itself is under test.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
use ecs_rebalancer::twin::server::{serve, Faults, ServeConfig, TARGET_PREFIX};
use ecs_rebalancer::twin::{Twin, TwinConfig};

/// Starts a twin server on an ephemeral loopback port; returns its address.
async fn start(builder: ClusterBuilder) -> String {
    start_with(
        builder,
        ServeConfig {
            speed: 0.0,
            ..ServeConfig::default()
        },
    )
    .await
}

async fn start_with(builder: ClusterBuilder, config: ServeConfig) -> String {
    let twin = Arc::new(Twin::new(builder.snapshot(), TwinConfig::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(twin, listener, config));
    addr
}

/// One raw HTTP/1.1 request; returns status, the `x-amzn-errortype` header, and the JSON body.
async fn call(
    addr: &str,
    method: &str,
    path: &str,
    target: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    call_text(addr, method, path, target, &body.to_string()).await
}

/// [`call`] with any body, JSON or not.
async fn call_text(
    addr: &str,
    method: &str,
    path: &str,
    target: Option<&str>,
    body: &str,
) -> (u16, Option<String>, Value) {
    call_with_headers(addr, method, path, target, body, &[]).await
}

/// [`call_text`] with more headers.
async fn call_with_headers(
    addr: &str,
    method: &str,
    path: &str,
    target: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(op) = target {
        request.push_str(&format!(
            "x-amz-target: {TARGET_PREFIX}{op}\r\ncontent-type: application/x-amz-json-1.1\r\n"
        ));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, payload) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let error_type = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-errortype: ").map(str::to_owned));
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    (
        status,
        error_type,
        serde_json::from_str(&payload).unwrap_or(Value::Null),
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn big_cluster(instances: usize) -> ClusterBuilder {
    let mut b = ClusterBuilder::new("wire").service(service("web").cpu(16).memory(32));
    for i in 0..instances {
        b = b.instance(instance(&format!("{i:04}")).cpu(4096).memory(16384));
    }
    for i in 0..instances {
        b = b.tasks("web", &format!("{i:04}"), 1);
    }
    b
}

#[tokio::test]
async fn list_calls_page_by_100_with_an_opaque_next_token() {
    let addr = start(big_cluster(250)).await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = json!({"cluster": "wire"});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let (status, _, body) = call(&addr, "POST", "/", Some("ListContainerInstances"), &req).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        seen.extend(
            body["containerInstanceArns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
        match body.get("nextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250);

    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("ListTasks"),
        &json!({"cluster": "wire", "maxResults": 60, "serviceName": "web"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["taskArns"].as_array().unwrap().len(), 60);
    assert!(body["nextToken"].is_string());

    let (status, kind, _) = call(
        &addr,
        "POST",
        "/",
        Some("ListTasks"),
        &json!({"cluster": "wire", "maxResults": 101}),
    )
    .await;
    assert_eq!((status, kind.as_deref()), (400, Some("InvalidParameterException")));
    let (status, kind, _) = call(
        &addr,
        "POST",
        "/",
        Some("ListTasks"),
        &json!({"cluster": "wire", "nextToken": "forged"}),
    )
    .await;
    assert_eq!((status, kind.as_deref()), (400, Some("InvalidParameterException")));
}

#[tokio::test]
async fn describe_calls_enforce_batch_limits_and_report_missing_items() {
    let addr = start(big_cluster(120)).await;
    let (_, _, listed) = call(&addr, "POST", "/", Some("ListTasks"), &json!({"cluster": "wire"})).await;
    let mut arns: Vec<Value> = listed["taskArns"].as_array().unwrap().clone();
    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("DescribeTasks"),
        &json!({"cluster": "wire", "tasks": arns}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["tasks"].as_array().unwrap().len(), 100);
    let created = &body["tasks"][0]["cpu"];
    assert_eq!(created, "16", "numbers ECS sends as strings stay strings");

    arns.push(json!("arn:aws:ecs:eu-west-1:111122223333:task/wire/missing"));
    let (status, kind, body) = call(
        &addr,
        "POST",
        "/",
        Some("DescribeTasks"),
        &json!({"cluster": "wire", "tasks": arns}),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidParameterException")),
        "{body}"
    );
    assert_eq!(body["__type"], "InvalidParameterException");

    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("DescribeTasks"),
        &json!({"cluster": "wire", "tasks": ["arn:aws:ecs:eu-west-1:111122223333:task/wire/missing"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["failures"][0]["reason"], "MISSING");

    let services: Vec<String> = (0..11).map(|i| format!("s{i}")).collect();
    let (status, kind, _) = call(
        &addr,
        "POST",
        "/",
        Some("DescribeServices"),
        &json!({"cluster": "wire", "services": services}),
    )
    .await;
    assert_eq!((status, kind.as_deref()), (400, Some("InvalidParameterException")));
}

#[tokio::test]
async fn errors_have_aws_shapes() {
    let addr = start(big_cluster(2)).await;
    let (status, kind, body) = call(&addr, "POST", "/", Some("ListTasks"), &json!({"cluster": "elsewhere"})).await;
    assert_eq!((status, kind.as_deref()), (400, Some("ClusterNotFoundException")));
    assert_eq!(body["message"], "Cluster not found.");
    let (status, kind, _) = call(&addr, "POST", "/", Some("RunTask"), &json!({"cluster": "wire"})).await;
    assert_eq!((status, kind.as_deref()), (400, Some("UnknownOperationException")));
    let (status, kind, _) = call(&addr, "POST", "/", None, &json!({})).await;
    assert_eq!((status, kind.as_deref()), (400, Some("UnknownOperationException")));
}

/// Each body is parsed once into the operation's shape: a body that is not a JSON object, or a member of the wrong
/// type, is a `SerializationException` naming the member (nothing is applied); a member ECS does not know is ignored.
#[tokio::test]
async fn a_malformed_body_is_a_serialization_exception_naming_the_member() {
    let addr = start(big_cluster(2)).await;
    let serialization = |(status, kind, body): (u16, Option<String>, Value)| {
        assert_eq!(
            (status, kind.as_deref()),
            (400, Some("SerializationException")),
            "{body}"
        );
        assert_eq!(body["__type"], "SerializationException");
        body["message"].as_str().unwrap_or_default().to_owned()
    };
    for (operation, body, member) in [
        (
            "ListTasks",
            json!({"cluster": "wire", "maxResults": "10"}),
            "maxResults: ",
        ),
        (
            "DescribeTasks",
            json!({"cluster": "wire", "tasks": ["a", 1]}),
            "tasks[1]: ",
        ),
        (
            "UpdateService",
            json!({"cluster": "wire", "service": "web", "desiredCount": 1.5}),
            "desiredCount: ",
        ),
        (
            "UpdateService",
            json!({"cluster": "wire", "service": "web", "forceNewDeployment": "true"}),
            "forceNewDeployment: ",
        ),
        ("StopTask", json!({"cluster": "wire", "task": ["t"]}), "task: "),
        (
            "PutAttributes",
            json!({"cluster": "wire", "attributes": [{"name": 7}]}),
            "attributes[0].name: ",
        ),
    ] {
        let message = serialization(call(&addr, "POST", "/", Some(operation), &body).await);
        assert!(message.starts_with(member), "{operation} {body}: {message}");
    }
    let message = serialization(call_text(&addr, "POST", "/", Some("ListTasks"), "{\"cluster\": ").await);
    assert!(message.starts_with("malformed JSON: "), "{message}");
    let message = serialization(call_text(&addr, "POST", "/", Some("StopTask"), r#"["wire", "t", "r"]"#).await);
    assert_eq!(message, "the request body is not a JSON object");

    // Nothing was applied; unknown members are ignored, and an empty body is an empty request.
    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("UpdateService"),
        &json!({"cluster": "wire", "service": "web", "forceNewDeployment": false, "propagateTags": "SERVICE"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["service"]["deployments"].as_array().unwrap().len(), 1);
    let (status, _, body) = call_text(&addr, "POST", "/", Some("ListClusters"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clusterArns"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn mutations_change_the_twin_and_timestamps_are_epoch_seconds() {
    let addr = start(big_cluster(12)).await;
    let (_, _, listed) = call(&addr, "POST", "/", Some("ListTasks"), &json!({"cluster": "wire"})).await;
    let task = listed["taskArns"][0].as_str().unwrap().to_owned();
    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("StopTask"),
        &json!({"cluster": "wire", "task": task, "reason": "ecs-rebalancer stop-task:x"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["desiredStatus"], "STOPPED");
    assert_eq!(body["task"]["stoppedReason"], "ecs-rebalancer stop-task:x");
    assert!(
        body["task"]["stoppingAt"].is_f64(),
        "timestamps are epoch seconds: {}",
        body["task"]["stoppingAt"]
    );

    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("UpdateService"),
        &json!({"cluster": "wire", "service": "web", "forceNewDeployment": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["service"]["deployments"].as_array().unwrap().len(), 2);
    assert!(body["service"]["deployments"][0]["createdAt"].is_f64());

    let (_, _, listed) = call(
        &addr,
        "POST",
        "/",
        Some("ListContainerInstances"),
        &json!({"cluster": "wire"}),
    )
    .await;
    let instances: Vec<Value> = listed["containerInstanceArns"].as_array().unwrap().clone();
    let (status, kind, _) = call(
        &addr,
        "POST",
        "/",
        Some("UpdateContainerInstancesState"),
        &json!({"cluster": "wire", "containerInstances": instances, "status": "DRAINING"}),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidParameterException")),
        "at most 10 a call"
    );
    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("UpdateContainerInstancesState"),
        &json!({"cluster": "wire", "containerInstances": [instances[0], "nope"], "status": "DRAINING"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["containerInstances"][0]["status"], "DRAINING");
    assert_eq!(body["failures"][0]["reason"], "MISSING");
    // The state it is already in: the instance comes back in containerInstances, as a client reading
    // containerInstances[0] expects, and no failure (a boto3 client found this).
    let (status, _, body) = call(
        &addr,
        "POST",
        "/",
        Some("UpdateContainerInstancesState"),
        &json!({"cluster": "wire", "containerInstances": [instances[1]], "status": "ACTIVE"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["containerInstances"][0]["status"], "ACTIVE", "{body}");
    assert_eq!(body["failures"], json!([]));
    // A status ECS does not take is refused in ECS's words, with no Rust formatting in them.
    let (status, kind, body) = call(
        &addr,
        "POST",
        "/",
        Some("UpdateContainerInstancesState"),
        &json!({"cluster": "wire", "containerInstances": [instances[1]], "status": "DEREGISTERING"}),
    )
    .await;
    assert_eq!((status, kind.as_deref()), (400, Some("InvalidParameterException")));
    assert_eq!(
        body["message"],
        "Container instance status should be one of [ACTIVE, DRAINING]"
    );

    let (status, _, snapshot) = call(&addr, "GET", "/__twin/snapshot", None, &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(snapshot["cluster"], "wire");
    let (_, _, calls) = call(&addr, "GET", "/__twin/calls", None, &json!({})).await;
    assert_eq!(calls["ListTasks"], 1);
    assert_eq!(calls["StopTask"], 1);
}

/// Injected faults have ECS's shapes: an internal error is a 500 `ServerException`; a describe with a failure moves
/// an item that exists into `failures[]` as `MISSING`; latency delays every answer by at least the amount asked.
#[tokio::test]
async fn injected_faults_have_aws_shapes() {
    let cluster = || {
        ClusterBuilder::new("wire")
            .instance(instance("a"))
            .instance(instance("b"))
            .service(service("web"))
            .tasks("web", "a", 2)
    };
    let faults = |f: Faults| ServeConfig {
        speed: 0.0,
        faults: f,
        ..ServeConfig::default()
    };
    let ask = json!({"cluster": "wire"});

    let addr = start_with(
        cluster(),
        faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }),
    )
    .await;
    let (status, kind, body) = call(&addr, "POST", "/", Some("ListTasks"), &ask).await;
    assert_eq!((status, kind.as_deref()), (500, Some("ServerException")), "{body}");

    let addr = start_with(
        cluster(),
        faults(Faults {
            describe_failures: 1.0,
            ..Faults::default()
        }),
    )
    .await;
    let (_, _, listed) = call(&addr, "POST", "/", Some("ListContainerInstances"), &ask).await;
    let arns = listed["containerInstanceArns"].clone();
    assert_eq!(arns.as_array().unwrap().len(), 2, "lists are whole");
    let (status, _, described) = call(
        &addr,
        "POST",
        "/",
        Some("DescribeContainerInstances"),
        &json!({"cluster": "wire", "containerInstances": arns}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(described["containerInstances"].as_array().unwrap().len(), 1);
    assert_eq!(described["failures"], json!([{"arn": arns[1], "reason": "MISSING"}]));

    let latency = std::time::Duration::from_millis(300);
    let addr = start_with(
        cluster(),
        faults(Faults {
            latency,
            ..Faults::default()
        }),
    )
    .await;
    let t = std::time::Instant::now();
    let (status, _, _) = call(&addr, "POST", "/", Some("ListTasks"), &ask).await;
    assert_eq!(status, 200);
    assert!(t.elapsed() >= latency, "answered after {:?}", t.elapsed());
}

/// The journal an invariant checker reads: every mutation applied, in order, with the wall-clock time, the request,
/// who sent it and whether its response was dropped; reads and refused mutations are not in it.
#[tokio::test]
async fn every_applied_mutation_is_journaled_with_who_sent_it() {
    let cluster = ClusterBuilder::new("wire")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web"))
        .tasks("web", "a", 2);
    let addr = start_with(
        cluster,
        ServeConfig {
            speed: 0.0,
            faults: Faults {
                drop_mutation_responses: 1.0,
                ..Faults::default()
            },
            ..ServeConfig::default()
        },
    )
    .await;
    let (_, _, listed) = call(&addr, "POST", "/", Some("ListTasks"), &json!({"cluster": "wire"})).await;
    let task = listed["taskArns"][0].as_str().unwrap().to_owned();
    let stop = json!({"cluster": "wire", "task": task, "reason": "ecs-rebalancer stop-task:x"}).to_string();
    let who = [("user-agent", "aws-sdk-rust/1.3"), ("amz-sdk-invocation-id", "inv-1")];
    let (status, _, _) = call_with_headers(&addr, "POST", "/", Some("StopTask"), &stop, &who).await;
    assert_eq!(status, 500, "the response was dropped");
    let missing = json!({"cluster": "wire", "task": "arn:aws:ecs:eu-west-1:111122223333:task/wire/nope"});
    let (status, _, _) = call(&addr, "POST", "/", Some("StopTask"), &missing).await;
    assert_eq!(status, 400, "refused: nothing applied");

    let (status, _, journal) = call(&addr, "GET", "/__twin/mutations", None, &Value::Null).await;
    assert_eq!(status, 200);
    let journal = journal.as_array().unwrap();
    assert_eq!(journal.len(), 1, "{journal:?}");
    let entry = &journal[0];
    assert_eq!(entry["seq"], 0);
    assert_eq!(entry["operation"], "StopTask");
    assert_eq!(entry["request"]["task"], task.as_str());
    assert_eq!(entry["request"]["reason"], "ecs-rebalancer stop-task:x");
    assert_eq!(entry["userAgent"], "aws-sdk-rust/1.3");
    assert_eq!(entry["invocationId"], "inv-1");
    assert_eq!(entry["responseDropped"], true);
    let at = entry["at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
}

/// One instance carrying two tasks of `web`.
fn one_instance() -> ClusterBuilder {
    ClusterBuilder::new("wire")
        .instance(instance("a"))
        .service(service("web"))
        .tasks("web", "a", 2)
}

/// A scale-out from outside: an instance posted in the snapshot format joins, empty and ACTIVE; the same ARN twice
/// is refused.
#[tokio::test]
async fn an_instance_posted_to_the_twin_joins_the_cluster_empty() {
    let addr = start(one_instance()).await;
    let (_, _, snap) = call(&addr, "GET", "/__twin/snapshot", None, &Value::Null).await;
    let mut new = snap["containerInstances"][0].clone();
    new["containerInstanceArn"] = json!("arn:aws:ecs:eu-west-1:111122223333:container-instance/wire/new");
    new["ec2InstanceId"] = json!("i-new");
    let (status, _, _) = call(&addr, "POST", "/__twin/instances", None, &new).await;
    assert_eq!(status, 200);
    let (status, kind, _) = call(&addr, "POST", "/__twin/instances", None, &new).await;
    assert_eq!((status, kind.as_deref()), (400, Some("InvalidParameterException")));
    let (status, _, _) = call(&addr, "POST", "/__twin/instances", None, &json!({"not": "an instance"})).await;
    assert_eq!(status, 400);

    let (_, _, snap) = call(&addr, "GET", "/__twin/snapshot", None, &Value::Null).await;
    let joined = snap["containerInstances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ec2InstanceId"] == "i-new")
        .expect("registered");
    assert_eq!(joined["status"], "ACTIVE");
    assert_eq!(joined["runningTasksCount"], 0);
    assert_eq!(joined["remainingResources"], joined["registeredResources"]);
}

/// Task scale-in protection on the wire, as the API reference and the developer guide describe it
/// (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html): UpdateTaskProtection
/// takes up to 10 tasks and `expiresInMinutes` from 1 to 2880 (2 hours when not given); GetTaskProtection up to 100;
/// protection lapses on the twin's clock; standalone tasks are `TASK_NOT_VALID`, unknown ones `MISSING`; protecting
/// more tasks than the service's desired count is `DEPLOYMENT_BLOCKED`.
#[tokio::test]
async fn task_protection_is_served_with_its_limits_and_lapses_on_the_twins_clock() {
    let twin = Arc::new(Twin::new(
        big_cluster(12).standalone_task("batch", "0000", 16, 32).snapshot(),
        TwinConfig::default(),
    ));
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
    let snapshot = twin.snapshot();
    let web: Vec<String> = snapshot
        .tasks
        .iter()
        .filter(|t| t.service_name() == Some("web"))
        .map(|t| t.task_arn.clone())
        .collect();
    let standalone = snapshot
        .tasks
        .iter()
        .find(|t| t.service_name().is_none())
        .unwrap()
        .task_arn
        .clone();
    let epoch = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
    let update = |body: Value| {
        let addr = addr.clone();
        async move { call(&addr, "POST", "/", Some("UpdateTaskProtection"), &body).await }
    };
    let get = |tasks: Vec<String>| {
        let addr = addr.clone();
        async move {
            call(
                &addr,
                "POST",
                "/",
                Some("GetTaskProtection"),
                &json!({"cluster": "wire", "tasks": tasks}),
            )
            .await
        }
    };

    // On, for the default 2 hours; the task named by its ID.
    let id = web[0].rsplit('/').next().unwrap();
    let (status, _, body) = update(json!({"cluster": "wire", "tasks": [id], "protectionEnabled": true})).await;
    assert_eq!(status, 200, "{body}");
    let two_hours = epoch(twin.now() + chrono::Duration::hours(2));
    assert_eq!(body["protectedTasks"][0]["taskArn"], web[0].as_str());
    assert_eq!(body["protectedTasks"][0]["protectionEnabled"], true);
    assert_eq!(body["protectedTasks"][0]["expirationDate"].as_f64(), Some(two_hours));
    // One minute for another; the standalone task and an unknown one fail, each with its reason.
    let (status, _, body) = update(json!({
        "cluster": "wire", "tasks": [web[1], standalone, "nope"], "protectionEnabled": true, "expiresInMinutes": 1
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["protectedTasks"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["failures"],
        json!([{"arn": standalone, "reason": "TASK_NOT_VALID"}, {"arn": "nope", "reason": "MISSING"}])
    );

    let (_, _, body) = get(vec![web[0].clone(), web[1].clone(), web[2].clone()]).await;
    let enabled: Vec<bool> = body["protectedTasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["protectionEnabled"].as_bool().unwrap())
        .collect();
    assert_eq!(enabled, [true, true, false]);
    assert!(body["protectedTasks"][2].get("expirationDate").is_none());
    // Two minutes later on the twin's clock, the one-minute protection has lapsed; the two-hour one holds.
    twin.advance(std::time::Duration::from_secs(120));
    let (_, _, body) = get(vec![web[0].clone(), web[1].clone()]).await;
    assert_eq!(body["protectedTasks"][0]["protectionEnabled"], true);
    assert_eq!(body["protectedTasks"][1]["protectionEnabled"], false);
    assert_eq!(
        twin.snapshot().protected_tasks.len(),
        1,
        "the lapsed one is gone from the state"
    );
    // Off again.
    let (_, _, body) = update(json!({"cluster": "wire", "tasks": [web[0]], "protectionEnabled": false})).await;
    assert_eq!(body["protectedTasks"][0]["protectionEnabled"], false);
    assert!(twin.snapshot().protected_tasks.is_empty());

    // Limits: 48 hours at most, at least a minute, 10 tasks an update, 100 a read.
    for minutes in [0, 2881] {
        let (status, kind, _) = update(json!({
            "cluster": "wire", "tasks": [web[0]], "protectionEnabled": true, "expiresInMinutes": minutes
        }))
        .await;
        assert_eq!(
            (status, kind.as_deref()),
            (400, Some("InvalidParameterException")),
            "{minutes}"
        );
    }
    let (status, _, body) = update(json!({
        "cluster": "wire", "tasks": [web[0]], "protectionEnabled": true, "expiresInMinutes": 2880
    }))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["protectedTasks"][0]["expirationDate"].as_f64(),
        Some(epoch(twin.now() + chrono::Duration::hours(48)))
    );
    let (status, kind, _) = update(json!({"cluster": "wire", "tasks": web[..11], "protectionEnabled": true})).await;
    assert_eq!((status, kind.as_deref()), (400, Some("InvalidParameterException")));
    let many: Vec<String> = (0..101).map(|_| web[0].clone()).collect();
    let (status, kind, _) = get(many).await;
    assert_eq!((status, kind.as_deref()), (400, Some("InvalidParameterException")));

    // All 12 of web's desired 12 may be protected. With the desired count lowered to 11 (a scale-in, which
    // protection holds up), renewing one is DEPLOYMENT_BLOCKED, and the protection it had stays.
    let (_, _, body) = update(json!({"cluster": "wire", "tasks": web[1..10], "protectionEnabled": true})).await;
    assert_eq!(body["protectedTasks"].as_array().unwrap().len(), 9);
    let (_, _, body) = update(json!({"cluster": "wire", "tasks": web[10..12], "protectionEnabled": true})).await;
    assert_eq!(body["protectedTasks"].as_array().unwrap().len(), 2, "{body}");
    twin.set_desired_count("web", 11).unwrap();
    let (_, _, body) = update(json!({"cluster": "wire", "tasks": [web[0]], "protectionEnabled": true})).await;
    assert_eq!(
        body["failures"],
        json!([{"arn": web[0], "reason": "DEPLOYMENT_BLOCKED"}]),
        "more protected tasks than the desired count"
    );
    let (_, _, body) = get(vec![web[0].clone()]).await;
    assert_eq!(body["protectedTasks"][0]["protectionEnabled"], true);
}

/// Operations the fuzzer names: every one the twin serves, a few it does not, and none at all.
const FUZZ_OPERATIONS: [&str; 8] = [
    "ListTasks",
    "DescribeTasks",
    "StopTask",
    "UpdateService",
    "UpdateContainerInstancesState",
    "DescribeContainerInstances",
    "RunTask",
    "",
];

/// A body: random bytes, a random JSON value, or a request of the right operation with a member of the wrong type.
fn fuzz_body() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let json = prop::collection::vec((any::<String>(), any::<i64>(), any::<bool>()), 0..8).prop_map(|members| {
        let object: serde_json::Map<String, Value> = members
            .into_iter()
            .enumerate()
            .map(|(k, (name, n, b))| match k % 3 {
                0 => (name, json!(n)),
                1 => (name, json!(b)),
                _ => ("cluster".to_owned(), json!([name, {"nested": [n, b]}])),
            })
            .collect();
        Value::Object(object).to_string().into_bytes()
    });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), json]
}

/// Random operations, bodies and headers over a real socket: every answer is 200 or AWS's error shape (a JSON
/// `__type` and `message`, and the `x-amzn-ErrorType` header), and the server keeps serving. A body over the limit
/// is refused in the same shape.
#[tokio::test]
async fn fuzzed_requests_get_aws_shaped_answers_and_the_twin_keeps_serving() {
    use proptest::strategy::{Strategy as _, ValueTree as _};
    use proptest::test_runner::{Config, TestRunner};
    let addr = start(one_instance()).await;
    let mut runner = TestRunner::new(Config::with_cases(200));
    let strategy = (0..FUZZ_OPERATIONS.len(), fuzz_body(), proptest::prelude::any::<bool>());
    for _ in 0..200 {
        let (op, body, gzip) = strategy.new_tree(&mut runner).unwrap().current();
        let body = String::from_utf8_lossy(&body).into_owned();
        let headers: &[(&str, &str)] = if gzip { &[("content-encoding", "gzip")] } else { &[] };
        let target = Some(FUZZ_OPERATIONS[op]).filter(|o| !o.is_empty());
        let (status, kind, answer) = call_with_headers(&addr, "POST", "/", target, &body, headers).await;
        if status != 200 {
            assert!(
                (400..600).contains(&status)
                    && kind.is_some()
                    && answer["__type"].is_string()
                    && answer["message"].is_string(),
                "{:?} {body:?}: {status} {kind:?} {answer}",
                FUZZ_OPERATIONS[op]
            );
        }
    }
    let huge = json!({"cluster": "wire", "tasks": ["x".repeat(twin_limit() + 1)]}).to_string();
    let (status, kind, answer) = call_text(&addr, "POST", "/", Some("DescribeTasks"), &huge).await;
    assert_eq!(
        (status, kind.as_deref()),
        (413, Some("RequestEntityTooLargeException")),
        "{answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("bytes"), "{answer}");
    let (status, _, answer) = call(&addr, "POST", "/", Some("ListTasks"), &json!({"cluster": "wire"})).await;
    assert_eq!(status, 200, "still serving: {answer}");
    assert_eq!(answer["taskArns"].as_array().unwrap().len(), 2);
}

fn twin_limit() -> usize {
    ecs_rebalancer::twin::server::MAX_BODY
}

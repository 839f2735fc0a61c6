//! Snapshot files: round trips, strictness where it matters, errors that name the item and the field, indexes and
//! inconsistencies. The fixture `tests/fixtures/snapshot-mixed.json` holds every shape the model reads: instances of
//! three sizes (one DRAINING) with TCP and UDP ports, service tasks with host port bindings, a stopped standalone
//! task, a daemon, a service mid-deployment, task definitions with port mappings, constraints and GPU requirements,
//! and partial utilisation.

use std::path::{Path, PathBuf};

use crate::common;

use serde_json::{json, Value};

use ecs_rebalancer::model::{
    Cluster, Inconsistency, InstanceStatus, NetworkMode, PlacementStrategyType, Protocol, RolloutState,
    SchedulingStrategy, Snapshot, SnapshotError, TaskStatus,
};

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/snapshot-mixed.json")
}

fn fixture_json() -> Value {
    serde_json::from_slice(&std::fs::read(fixture_path()).unwrap()).unwrap()
}

fn load_value(v: &Value) -> Result<Snapshot, SnapshotError> {
    Snapshot::from_slice(Path::new("snap.json"), &serde_json::to_vec(v).unwrap())
}

fn error_lines(v: &Value) -> String {
    load_value(v).unwrap_err().to_string()
}

#[test]
fn load_then_save_writes_back_exactly_what_was_read() {
    let original = fixture_json();
    let snapshot = Snapshot::load(&fixture_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("saved.json");
    snapshot.save(&out).unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        saved, original,
        "every field of the fixture is modelled, so nothing may be lost or added"
    );
    assert_eq!(Snapshot::load(&out).unwrap(), snapshot);
}

#[test]
fn the_model_reads_each_shape_with_its_meaning() {
    let s = Snapshot::load(&fixture_path()).unwrap();
    let [small, large, draining] = &s.container_instances[..] else {
        panic!("three instances")
    };
    assert_eq!(draining.status, InstanceStatus::Draining);
    assert!(small.can_take_tasks() && !draining.can_take_tasks());
    assert_eq!(
        small.ports_in_use(&Protocol::Tcp).into_iter().collect::<Vec<_>>(),
        [22, 2375, 2376, 8080, 51678, 51679]
    );
    assert_eq!(
        small.ports_in_use(&Protocol::Udp).into_iter().collect::<Vec<_>>(),
        [5353]
    );
    assert_eq!(large.availability_zone(), Some("eu-west-1b"));
    assert_eq!(
        small.attribute("ecs.capability.docker-remote-api.1.44"),
        None,
        "attribute without a value"
    );

    let worker_small = &s.tasks[3];
    assert_eq!(
        (worker_small.cpu_units(), worker_small.memory_mib()),
        (Some(512), Some(2048))
    );
    assert_eq!(worker_small.service_name(), Some("worker"));
    let report = s
        .tasks
        .iter()
        .find(|t| t.group.as_deref() == Some("family:report"))
        .unwrap();
    assert_eq!(report.last_status, TaskStatus::Stopped);
    assert_eq!(report.service_name(), None);
    assert_eq!(
        report.memory_mib(),
        Some(1024),
        "no task-level memory: the container's reservation counts"
    );
    assert_eq!(s.tasks[0].containers[0].network_bindings[0].host_port, Some(8080));

    let web = &s.services[0];
    assert_eq!(web.placement_strategy[1].kind, PlacementStrategyType::Spread);
    assert_eq!(web.availability_zone_rebalancing.as_deref(), Some("ENABLED"));
    let worker = &s.services[1];
    assert_eq!(worker.deployments.len(), 2);
    assert_eq!(worker.deployments[0].rollout_state, Some(RolloutState::InProgress));
    assert_eq!((worker.minimum_healthy_percent(), worker.maximum_percent()), (50, 200));
    assert_eq!(s.services[2].scheduling_strategy, SchedulingStrategy::Daemon);

    let agent = s
        .task_definitions
        .iter()
        .find(|d| d.family.as_deref() == Some("agent"))
        .unwrap();
    assert_eq!(agent.network_mode(), NetworkMode::Host);
    assert_eq!((agent.cpu_units(), agent.memory_mib()), (64, 128));
    let worker_td = &s.task_definitions[1];
    assert_eq!(
        worker_td.memory_mib(),
        2048,
        "memoryReservation is preferred over memory"
    );

    assert_eq!(s.utilization.len(), 2);
    assert_eq!(
        s.utilization[&large.container_instance_arn].memory, None,
        "missing is unknown, not zero"
    );
}

#[test]
fn unknown_fields_anywhere_are_ignored() {
    let mut v = fixture_json();
    v["schemaHint"] = json!("future");
    v["containerInstances"][0]["healthStatus"] = json!({"overallStatus": "OK"});
    v["tasks"][0]["ephemeralStorage"] = json!({"sizeInGiB": 20});
    v["tasks"][0]["containers"][0]["runtimeId"] = json!("abc");
    v["services"][0]["loadBalancers"] = json!([{"targetGroupArn": "x"}]);
    assert_eq!(load_value(&v).unwrap(), Snapshot::load(&fixture_path()).unwrap());
}

#[test]
fn a_missing_required_field_names_the_item_and_the_field() {
    let mut v = fixture_json();
    v["tasks"][1].as_object_mut().unwrap().remove("taskArn");
    v["containerInstances"][2]
        .as_object_mut()
        .unwrap()
        .remove("agentConnected");
    let e = error_lines(&v);
    let instance_arn = v["containerInstances"][2]["containerInstanceArn"].as_str().unwrap();
    assert_eq!(
        e,
        format!(
            "snap.json: 2 invalid items\n  \
             containerInstances[2] ({instance_arn}): missing field \"agentConnected\"\n  \
             tasks[1]: missing field \"taskArn\""
        )
    );
}

#[test]
fn a_wrong_type_deep_in_an_item_names_the_path_to_it() {
    let mut v = fixture_json();
    v["tasks"][0]["containers"][0]["networkBindings"][0]["hostPort"] = json!("eighty");
    v["services"][1]["deployments"][0]["createdAt"] = json!("last tuesday");
    let e = error_lines(&v);
    let task_arn = v["tasks"][0]["taskArn"].as_str().unwrap();
    let service_arn = v["services"][1]["serviceArn"].as_str().unwrap();
    assert!(
        e.contains(&format!(
            "tasks[0] ({task_arn}): containers[0].networkBindings[0].hostPort: invalid type: string \"eighty\", \
             expected u16"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "services[1] ({service_arn}): deployments[0].createdAt: invalid timestamp \"last tuesday\""
        )),
        "{e}"
    );
}

#[test]
fn top_level_defects_are_named() {
    let e = error_lines(&json!([1, 2]));
    assert_eq!(
        e,
        "snap.json: 1 invalid item\n  snapshot: expected a JSON object, found an array"
    );

    let e = error_lines(&json!({"containerInstances": {}, "tasks": []}));
    assert!(e.contains("cluster: missing field \"cluster\""), "{e}");
    assert!(
        e.contains("containerInstances: expected an array, found an object"),
        "{e}"
    );
    assert!(e.contains("services: missing field \"services\""), "{e}");
}

#[test]
fn utilisation_must_be_a_fraction() {
    let mut v = fixture_json();
    let arn = v["containerInstances"][0]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    v["utilization"][&arn]["cpu"] = json!(61);
    let e = error_lines(&v);
    assert_eq!(
        e,
        format!("snap.json: 1 invalid item\n  utilization[{arn:?}]: cpu: 61 is not a fraction between 0 and 1")
    );
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let e = Snapshot::from_slice(Path::new("snap.json"), b"{\n  \"cluster\": \"x\",\n  \"tasks\": [,]\n}").unwrap_err();
    assert_eq!(e.to_string(), "snap.json:3:13: expected value");
    let e = Snapshot::load(Path::new("/nonexistent/snap.json")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/snap.json: No such file"), "{e}");
}

#[test]
fn indexes_count_live_tasks_per_instance_and_service() {
    let cluster = Cluster::new(Snapshot::load(&fixture_path()).unwrap()).unwrap();
    let arn = |i: usize| cluster.instances()[i].container_instance_arn.clone();
    assert_eq!(
        cluster.tasks_on(&arn(0)).count(),
        3,
        "the stopped standalone task is history, not load"
    );
    assert_eq!(cluster.tasks_on(&arn(2)).count(), 1);
    assert_eq!(cluster.tasks_of("web").count(), 2);
    assert_eq!(cluster.tasks_of("agent").count(), 3);
    assert_eq!(cluster.tasks_of("nope").count(), 0);
    assert!(cluster.inconsistencies().is_empty());
    assert!(cluster.service("worker").is_some());
    let td = &cluster
        .task(&cluster.snapshot().tasks[0].task_arn)
        .unwrap()
        .task_definition_arn;
    assert!(cluster.task_definition(td).is_some());
}

#[test]
fn dangling_references_are_reported_and_fence_off_the_service() {
    let mut v = fixture_json();
    v["tasks"][0]["containerInstanceArn"] = json!("arn:aws:ecs:eu-west-1:111122223333:container-instance/mixed/gone");
    v["tasks"][2]["group"] = json!("service:deleted");
    let cluster = Cluster::new(load_value(&v).unwrap()).unwrap();
    let task = |i: usize| v["tasks"][i]["taskArn"].as_str().unwrap().to_owned();
    assert_eq!(
        cluster.inconsistencies(),
        [
            Inconsistency::TaskOnUnknownInstance {
                task_arn: task(0),
                container_instance_arn: "arn:aws:ecs:eu-west-1:111122223333:container-instance/mixed/gone".into(),
            },
            Inconsistency::TaskOfUnknownService {
                task_arn: task(2),
                service: "deleted".into()
            },
        ]
    );
    assert!(
        !cluster.is_service_consistent("web"),
        "a web task's whereabouts are unknown"
    );
    assert!(cluster.is_service_consistent("worker"));
    assert_eq!(
        cluster.tasks_of("web").count(),
        2,
        "a task still counts for its service wherever it runs"
    );
    assert_eq!(
        cluster.tasks_on(&cluster.instances()[0].container_instance_arn).count(),
        2
    );
}

#[test]
fn duplicate_arns_are_fatal() {
    let mut v = fixture_json();
    v["tasks"][3]["taskArn"] = v["tasks"][1]["taskArn"].clone();
    let e = Cluster::new(load_value(&v).unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "tasks[3]: duplicate taskArn {:?}, first seen at tasks[1]",
            v["tasks"][1]["taskArn"].as_str().unwrap()
        )
    );
}

fn inspect(args: &[&str]) -> (i32, String, String) {
    common::cli(Path::new("."), &[&["inspect"], args].concat())
}

#[test]
fn inspect_shows_each_instance_and_exits_2_on_a_broken_snapshot() {
    let path = fixture_path();
    let (code, stdout, _) = inspect(&["--snapshot", path.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["instances"].as_array().unwrap().len(), 3);
    assert_eq!(report["instances"][0]["tasks"], 3);
    assert_eq!(report["instances"][0]["cpuUsed"], 0.61);
    assert_eq!(report["instances"][1]["memoryUsed"], Value::Null);

    let (code, stdout, _) = inspect(&["--snapshot", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("i-00000000000000003  eu-west-1c   c5.2xlarge  DRAINING"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    let mut v = fixture_json();
    v["tasks"][1].as_object_mut().unwrap().remove("lastStatus");
    std::fs::write(&broken, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, stdout, stderr) = inspect(&["--snapshot", broken.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.contains("tasks[1] (arn:aws:ecs:eu-west-1:111122223333:task/mixed/"),
        "{stderr}"
    );
    assert!(stderr.contains("missing field \"lastStatus\""), "{stderr}");
}

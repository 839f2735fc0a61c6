//! The `aws-sdk-ecs` adapter against `moto_server`, an ECS implementation written independently of this project and
//! of the twin: a check of the wire format for the operations moto implements (list, describe, StopTask,
//! UpdateContainerInstancesState, UpdateService). Each test starts its own server (`tests/moto/ecs_server.py`) and
//! seeds it with boto3 (`tests/moto/seed.py`, which prints what moto answered); the adapter must read back exactly
//! that. `scripts/test.sh` installs moto when it is missing; without it these tests fail, they never skip.
//!
//! moto 5.2 is a data store with a few departures from ECS, repaired in the server wrapper (and shown by the last
//! test): a task's `containers[].cpu`/`memory` come as JSON numbers where ECS sends strings, which the SDK refuses
//! for the whole response, and RegisterContainerInstance ignores `totalResources`. Others are asserted as moto does
//! them, with ECS's behaviour in a comment: one container per task (the definition's first), ListTasks without its
//! default `desiredStatus` RUNNING filter, StopTask that stops at once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use ecs_rebalancer::ecs::sdk::SdkEcs;
use ecs_rebalancer::ecs::{EcsApi, EcsError, InstanceState};
use ecs_rebalancer::model::{InstanceStatus, Snapshot, TaskStatus};

const CLUSTER: &str = "moto-wire";
const SETUP: &str = "run scripts/test.sh, which installs moto[server] through pip";

/// `tests/moto/ecs_server.py` in a child process on 127.0.0.1, killed on drop (and gone with its stdin if this
/// process dies without dropping it).
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(extra: &[&str]) -> Moto {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/ecs_server.py");
        let mut child = Command::new("python3")
            .args([script, "--port", "0", "--until-stdin-closes"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {SETUP}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            child.kill().ok();
            child.wait().ok();
            panic!("moto's ECS server did not start (it said {line:?}, its stderr is above): {SETUP}");
        };
        Moto {
            endpoint: format!("http://{addr}"),
            child,
        }
    }

    /// Seeds [`CLUSTER`] and returns what boto3 read back from moto: `clusterArn`, `containerInstances` and `tasks`
    /// (as DescribeContainerInstances and DescribeTasks gave them), `serviceArn`, `taskDefinitionArn`.
    fn seed(&self) -> Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/seed.py");
        let out = Command::new("python3")
            .args([script, &self.endpoint, CLUSTER])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {SETUP}"));
        assert!(
            out.status.success(),
            "seeding failed ({}): {}\n{SETUP}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the seed's JSON")
    }

    fn client(&self, cluster: &str) -> SdkEcs {
        SdkEcs::from_conf(&ecs_rebalancer::aws::local(&self.endpoint), None, cluster)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Integer CPU and MEMORY of a `registeredResources` / `remainingResources` list.
fn amounts(resources: &Value) -> Value {
    let pick = |name: &str| {
        resources
            .as_array()
            .expect("a resource list")
            .iter()
            .find(|r| r["name"] == name)
            .map_or(Value::Null, |r| r["integerValue"].clone())
    };
    json!({ "CPU": pick("CPU"), "MEMORY": pick("MEMORY") })
}

/// The fields the controller reads from a container instance, in ECS's JSON (boto3's, or the model's serialised).
fn instance_view(i: &Value) -> Value {
    let attributes: BTreeMap<String, Value> = i["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| (a["name"].as_str().expect("a name").to_owned(), a["value"].clone()))
        .collect();
    json!({
        "containerInstanceArn": i["containerInstanceArn"],
        "ec2InstanceId": i["ec2InstanceId"],
        "status": i["status"],
        "agentConnected": i["agentConnected"],
        "runningTasksCount": i["runningTasksCount"],
        "registeredResources": amounts(&i["registeredResources"]),
        "remainingResources": amounts(&i["remainingResources"]),
        "attributes": attributes,
    })
}

/// The fields the controller reads from a task.
fn task_view(t: &Value) -> Value {
    let containers: Vec<Value> = t["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| json!({ "name": c["name"], "cpu": c["cpu"], "memory": c["memory"] }))
        .collect();
    json!({
        "taskArn": t["taskArn"],
        "clusterArn": t["clusterArn"],
        "containerInstanceArn": t["containerInstanceArn"],
        "taskDefinitionArn": t["taskDefinitionArn"],
        "group": t["group"],
        "startedBy": t["startedBy"],
        "lastStatus": t["lastStatus"],
        "desiredStatus": t["desiredStatus"],
        "containers": containers,
    })
}

/// Views keyed by ARN, so that order does not matter.
fn by_arn(items: impl IntoIterator<Item = Value>, key: &str) -> BTreeMap<String, Value> {
    items
        .into_iter()
        .map(|v| (v[key].as_str().expect("an ARN").to_owned(), v))
        .collect()
}

fn seen_instances(s: &Snapshot) -> BTreeMap<String, Value> {
    let views = s
        .container_instances
        .iter()
        .map(|i| instance_view(&serde_json::to_value(i).unwrap()));
    by_arn(views, "containerInstanceArn")
}

fn seen_tasks(s: &Snapshot) -> BTreeMap<String, Value> {
    let views = s.tasks.iter().map(|t| task_view(&serde_json::to_value(t).unwrap()));
    by_arn(views, "taskArn")
}

fn seeded(seed: &Value, list: &str, view: fn(&Value) -> Value, key: &str) -> BTreeMap<String, Value> {
    by_arn(seed[list].as_array().expect(list).iter().map(view), key)
}

#[tokio::test]
async fn observe_returns_exactly_what_moto_holds() {
    let moto = Moto::start(&[]);
    let seed = moto.seed();
    let seen = moto.client(CLUSTER).observe().await.expect("observe");

    assert_eq!(seen.cluster, CLUSTER);
    assert_eq!(
        seen.cluster_arn.as_ref(),
        seed["clusterArn"].as_str().map(str::to_owned).as_ref()
    );

    assert_eq!(seen.container_instances.len(), 4);
    assert_eq!(
        seen_instances(&seen),
        seeded(&seed, "containerInstances", instance_view, "containerInstanceArn")
    );
    for i in &seen.container_instances {
        assert_eq!(i.status, InstanceStatus::Active);
        assert!(
            i.ec2_instance_id.as_deref().is_some_and(|id| id.starts_with("i-")),
            "{i:?}"
        );
        // As registered: moto's own 4096 CPU / 7482 MiB would mean the wrapper's totalResources patch is gone.
        let registered = amounts(&serde_json::to_value(&i.registered_resources).unwrap());
        assert_eq!(
            registered,
            json!({ "CPU": 2048, "MEMORY": 4096 }),
            "{}",
            i.container_instance_arn
        );
        assert!(
            i.attributes.iter().any(|a| a.name == "stack"),
            "PutAttributes reaches the model: {i:?}"
        );
    }

    assert_eq!(seen.tasks.len(), 6);
    assert_eq!(seen_tasks(&seen), seeded(&seed, "tasks", task_view, "taskArn"));
    let instances: Vec<&str> = seen
        .container_instances
        .iter()
        .map(|i| i.container_instance_arn.as_str())
        .collect();
    for t in &seen.tasks {
        assert_eq!(t.last_status, TaskStatus::Running);
        assert_eq!(t.desired_status, TaskStatus::Running);
        assert!(
            instances.contains(&t.container_instance_arn.as_deref().unwrap_or("")),
            "{t:?}"
        );
        assert!(t.started_by.as_deref().is_some_and(|s| s.starts_with("seed-")), "{t:?}");
        // ECS would list both containers of the definition; moto builds a task's one container from the first.
        let containers: Vec<_> = t
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.cpu.as_deref(), c.memory.as_deref()))
            .collect();
        assert_eq!(containers, [("app", Some("256"), Some("512"))]);
    }
    let started: BTreeMap<&str, usize> = seen.tasks.iter().fold(BTreeMap::new(), |mut n, t| {
        *n.entry(t.container_instance_arn.as_deref().unwrap()).or_default() += 1;
        n
    });
    let mut placed: Vec<usize> = started.into_values().collect();
    placed.sort_unstable();
    assert_eq!(
        placed,
        [1, 1, 1, 3],
        "five StartTask on named instances, one RunTask on the first"
    );

    assert_eq!(seen.services.len(), 1);
    let service = &seen.services[0];
    assert_eq!(Some(service.service_arn.as_str()), seed["serviceArn"].as_str());
    assert_eq!(service.service_name, "web");
    assert_eq!(service.status, "ACTIVE");
    assert_eq!(service.desired_count, 6);
    assert_eq!(service.task_definition.as_deref(), seed["taskDefinitionArn"].as_str());

    assert_eq!(seen.task_definitions.len(), 1);
    let definition = &seen.task_definitions[0];
    assert_eq!(
        Some(definition.task_definition_arn.as_str()),
        seed["taskDefinitionArn"].as_str()
    );
    assert_eq!(definition.family.as_deref(), Some("web"));
    let containers: Vec<_> = definition
        .container_definitions
        .iter()
        .map(|c| (c.name.as_str(), c.cpu, c.memory))
        .collect();
    assert_eq!(containers, [("app", 256, Some(512)), ("sidecar", 128, Some(256))]);
}

#[tokio::test]
async fn stop_task_sends_the_reason_and_moto_records_it() {
    let moto = Moto::start(&[]);
    let seed = moto.seed();
    let ecs = moto.client(CLUSTER);
    let stopped = seed["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    ecs.stop_task(&stopped, "ecs-rebalancer stop-task:abc")
        .await
        .expect("StopTask, and its response (a task with containers) parses");

    let seen = ecs.observe().await.expect("observe");
    // ECS's ListTasks lists desiredStatus RUNNING by default, so a stopped task drops out of the next observation
    // there; moto does not filter, and moto stops at once (ECS: lastStatus RUNNING until the agent has stopped it).
    assert_eq!(seen.tasks.len(), 6);
    let t = seen
        .tasks
        .iter()
        .find(|t| t.task_arn == stopped)
        .expect("moto still lists it");
    assert_eq!(t.desired_status, TaskStatus::Stopped);
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.stopped_reason.as_deref(), Some("ecs-rebalancer stop-task:abc"));
    for other in seen.tasks.iter().filter(|t| t.task_arn != stopped) {
        assert_eq!(other.desired_status, TaskStatus::Running, "{}", other.task_arn);
        assert_eq!(other.last_status, TaskStatus::Running, "observing twice stops nothing");
    }
}

#[tokio::test]
async fn instance_state_goes_to_draining_and_back() {
    let moto = Moto::start(&[]);
    let seed = moto.seed();
    let ecs = moto.client(CLUSTER);
    let arn = seed["containerInstances"][1]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = |s: &Snapshot| -> Vec<(String, InstanceStatus)> {
        s.container_instances
            .iter()
            .map(|i| (i.container_instance_arn.clone(), i.status.clone()))
            .collect()
    };

    ecs.set_instance_state(&arn, InstanceState::Draining)
        .await
        .expect("DRAINING");
    let seen = ecs.observe().await.expect("observe");
    for (i, s) in status(&seen) {
        let expected = if i == arn {
            InstanceStatus::Draining
        } else {
            InstanceStatus::Active
        };
        assert_eq!(s, expected, "{i}");
    }

    ecs.set_instance_state(&arn, InstanceState::Active)
        .await
        .expect("ACTIVE");
    let seen = ecs.observe().await.expect("observe");
    assert!(status(&seen).iter().all(|(_, s)| *s == InstanceStatus::Active));

    // An instance ECS does not know comes back in `failures[]` (moto: reason MISSING), which the adapter refuses.
    let unknown = format!(
        "{}/00000000-0000-0000-0000-000000000000",
        arn.rsplit_once('/').unwrap().0
    );
    let e = ecs
        .set_instance_state(&unknown, InstanceState::Draining)
        .await
        .unwrap_err();
    assert!(matches!(&e, EcsError::Invalid(m) if m.contains("MISSING")), "{e:?}");
}

#[tokio::test]
async fn force_new_deployment_reaches_the_service() {
    let moto = Moto::start(&[]);
    moto.seed();
    let ecs = moto.client(CLUSTER);
    let before = ecs.observe().await.expect("observe").services[0].deployments.clone();
    assert_eq!(before.len(), 1);
    ecs.force_new_deployment("web").await.expect("UpdateService");
    let after = ecs.observe().await.expect("observe").services[0].deployments.clone();
    // ECS adds a PRIMARY deployment and keeps the old one ACTIVE until it drains; moto renews the one it has.
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].id, before[0].id, "a new deployment");

    let e = ecs.force_new_deployment("absent").await.unwrap_err();
    assert!(
        matches!(&e, EcsError::NotFound(m) if m.contains("ServiceNotFoundException")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_cluster_that_does_not_exist_is_not_found() {
    let moto = Moto::start(&[]);
    moto.seed();
    // ECS refuses ListContainerInstances on a missing cluster; moto lists none there and refuses ListTasks, the
    // adapter's next call: the same ClusterNotFoundException either way.
    let e = moto.client("elsewhere").observe().await.unwrap_err();
    assert!(
        matches!(&e, EcsError::NotFound(m) if m.contains("ClusterNotFoundException")),
        "{e:?}"
    );
}

#[tokio::test]
async fn unpatched_moto_breaks_the_sdk_which_is_why_the_wrapper_patches_it() {
    let moto = Moto::start(&["--no-patches"]);
    let seed = moto.seed();
    // boto3 does not check types: it shows what moto sends, numbers where ECS sends strings ...
    let container = &seed["tasks"][0]["containers"][0];
    assert_eq!((&container["cpu"], &container["memory"]), (&json!(256), &json!(512)));
    // ... and an instance registered with 2048 CPU / 4096 MiB as moto's fixed 4096 / 7482.
    let registered = amounts(&seed["containerInstances"][0]["registeredResources"]);
    assert_eq!(registered, json!({ "CPU": 4096, "MEMORY": 7482 }));

    // The Rust SDK refuses the whole DescribeTasks response: no snapshot, a failed read.
    let ecs = moto.client(CLUSTER);
    let e = ecs.observe().await.unwrap_err();
    assert!(
        matches!(&e, EcsError::Unavailable(m) if m.starts_with("DescribeTasks") && m.contains("expected string")),
        "{e:?}"
    );
    // StopTask answers with the stopped task, containers and all: a stop that happened reads as an unknown outcome.
    let task = seed["tasks"][0]["taskArn"].as_str().unwrap();
    let e = ecs.stop_task(task, "ecs-rebalancer stop-task:abc").await.unwrap_err();
    assert!(matches!(&e, EcsError::Unknown(m) if m.starts_with("StopTask")), "{e:?}");
}

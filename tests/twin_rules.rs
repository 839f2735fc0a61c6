//! The twin's scheduler, one ECS rule per test (docs/ecs.md: Placement, StopTask, Draining): StopTask, PENDING when nothing fits,
//! forceNewDeployment within minimum/maximum percent, draining, daemons, host ports, determinism, and the snapshot
//! format. Every test seeds the twin's RNG and drives its own clock with `advance`; nothing waits on real time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ecs_rebalancer::ecs::{EcsApi, EcsError, InstanceState};
use ecs_rebalancer::model::ecs::resource;
use ecs_rebalancer::model::{
    ContainerInstance, DeploymentStatus, InstanceStatus, Protocol, RolloutState, Service, Snapshot, Task, TaskStatus,
};
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder, AGENT_PORTS};
use ecs_rebalancer::twin::{Twin, TwinConfig};

const TICK: Duration = Duration::from_secs(10);

/// Ticks of 10 s, 30 s to start, 30 s to stop.
fn config(seed: u64) -> TwinConfig {
    TwinConfig {
        tick: TICK,
        start_delay: Duration::from_secs(30),
        stop_delay: Duration::from_secs(30),
        seed,
        skip_idle: true,
    }
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn arn(id: &str) -> String {
    instance(id).arn()
}

fn inst<'a>(snap: &'a Snapshot, id: &str) -> &'a ContainerInstance {
    let a = arn(id);
    snap.container_instances
        .iter()
        .find(|i| i.container_instance_arn == a)
        .unwrap_or_else(|| panic!("no instance {id}"))
}

fn svc<'a>(snap: &'a Snapshot, name: &str) -> &'a Service {
    snap.services
        .iter()
        .find(|s| s.service_name == name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

fn task<'a>(snap: &'a Snapshot, task_arn: &str) -> &'a Task {
    snap.tasks
        .iter()
        .find(|t| t.task_arn == task_arn)
        .unwrap_or_else(|| panic!("no task {task_arn}"))
}

/// Every task of the service (any status).
fn tasks_of<'a>(snap: &'a Snapshot, name: &str) -> Vec<&'a Task> {
    snap.tasks.iter().filter(|t| t.service_name() == Some(name)).collect()
}

/// Tasks of the service the scheduler still wants (desired RUNNING, not yet STOPPED).
fn live_of<'a>(snap: &'a Snapshot, name: &str) -> Vec<&'a Task> {
    tasks_of(snap, name)
        .into_iter()
        .filter(|t| t.desired_status == TaskStatus::Running && t.last_status != TaskStatus::Stopped)
        .collect()
}

/// Tasks of the service that are RUNNING and meant to stay (a task is healthy once RUNNING in the twin).
fn healthy_of(snap: &Snapshot, name: &str) -> usize {
    live_of(snap, name)
        .iter()
        .filter(|t| t.last_status == TaskStatus::Running)
        .count()
}

fn on(t: &Task, id: &str) -> bool {
    t.container_instance_arn.as_deref() == Some(arn(id).as_str())
}

/// The instance id (`a`, `b`, …) a task runs on.
fn where_is(snap: &Snapshot, t: &Task) -> String {
    let a = t
        .container_instance_arn
        .as_deref()
        .expect("an EC2 task has an instance");
    snap.container_instances
        .iter()
        .find(|i| i.container_instance_arn == a)
        .and_then(|i| i.ec2_instance_id.as_deref())
        .map(|id| id.trim_start_matches("i-").to_owned())
        .unwrap_or_else(|| panic!("task on unknown instance {a}"))
}

fn remaining(snap: &Snapshot, id: &str, name: &str) -> i64 {
    inst(snap, id)
        .remaining(name)
        .and_then(|r| r.integer_value)
        .unwrap_or_else(|| panic!("{id} reports no {name}"))
}

/// The TCP host ports `remainingResources` lists as in use on the instance, sorted, duplicates kept.
fn ports(snap: &Snapshot, id: &str) -> Vec<u16> {
    let mut v: Vec<u16> = inst(snap, id)
        .remaining(resource::PORTS)
        .and_then(|r| r.string_set_value.clone())
        .unwrap_or_default()
        .iter()
        .map(|p| p.parse().expect("a port number"))
        .collect();
    v.sort_unstable();
    v
}

fn agent_ports_and(extra: &[u16]) -> Vec<u16> {
    let mut v: Vec<u16> = AGENT_PORTS.iter().chain(extra).copied().collect();
    v.sort_unstable();
    v
}

fn host_ports(t: &Task) -> Vec<u16> {
    t.containers
        .iter()
        .flat_map(|c| &c.network_bindings)
        .filter_map(|b| b.host_port)
        .collect()
}

/// The one task of `name` on instance `id` (panics when there are none or several).
fn only_task_on<'a>(snap: &'a Snapshot, name: &str, id: &str) -> &'a Task {
    let v: Vec<&Task> = tasks_of(snap, name).into_iter().filter(|t| on(t, id)).collect();
    assert_eq!(v.len(), 1, "tasks of {name} on {id}: {v:#?}");
    v[0]
}

fn standalone<'a>(snap: &'a Snapshot, group: &str) -> &'a Task {
    snap.tasks
        .iter()
        .find(|t| t.group.as_deref() == Some(group))
        .unwrap_or_else(|| panic!("no task in group {group}"))
}

fn primary_id(s: &Service) -> String {
    s.deployments
        .iter()
        .find(|d| d.status == DeploymentStatus::Primary)
        .map(|d| d.id.clone())
        .expect("a primary deployment")
}

/// Tasks created after `t` (placed by the twin).
fn created_after(snap: &Snapshot, t: DateTime<Utc>) -> Vec<&Task> {
    snap.tasks
        .iter()
        .filter(|x| x.created_at.is_some_and(|c| c > t))
        .collect()
}

// ---- §3 StopTask ----

/// Three instances; `web` binds host port 8080 and runs on `a` and `b`, so a replacement can only land on `c`.
fn web_with_a_static_port() -> Snapshot {
    ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .service(service("web").port(Some(8080), 80, Protocol::Tcp))
        .tasks("web", "a", 1)
        .tasks("web", "b", 1)
        .snapshot()
}

#[tokio::test]
async fn stop_task_desired_status_is_stopped_at_once_and_the_task_stops_after_the_stop_timeout_with_the_reason() {
    let twin = Twin::new(web_with_a_static_port(), config(7));
    let t0 = twin.now();
    let old = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();

    twin.stop_task(&old, "rebalance action 42").await.unwrap();
    let s = twin.snapshot();
    let t = task(&s, &old);
    assert_eq!(
        t.desired_status,
        TaskStatus::Stopped,
        "desired STOPPED at once, before any tick"
    );
    assert_eq!(t.last_status, TaskStatus::Running);
    assert_eq!(t.stopped_reason.as_deref(), Some("rebalance action 42"));
    assert_eq!(t.stopping_at, Some(t0));
    assert_eq!(twin.now(), t0, "a call does not move the clock");

    // SIGTERM, then SIGKILL after the stop timeout: still RUNNING before stop_delay has passed.
    twin.advance(Duration::from_secs(20));
    let s = twin.snapshot();
    assert_eq!(task(&s, &old).last_status, TaskStatus::Running);
    assert_eq!(task(&s, &old).stopped_at, None);

    twin.advance(TICK);
    let s = twin.snapshot();
    let t = task(&s, &old);
    assert_eq!(t.last_status, TaskStatus::Stopped, "STOPPED once stop_delay has passed");
    assert_eq!(t.desired_status, TaskStatus::Stopped);
    assert_eq!(t.stopped_at, Some(t0 + secs(30)));
    assert_eq!(
        t.stopped_reason.as_deref(),
        Some("rebalance action 42"),
        "the reason survives the stop"
    );

    // Stopping it again is refused; an unknown task is not found.
    assert!(matches!(twin.stop_task(&old, "again").await, Err(EcsError::Invalid(_))));
    assert!(matches!(
        twin.stop_task("arn:aws:ecs:eu-west-1:111122223333:task/test/nope", "x")
            .await,
        Err(EcsError::NotFound(_))
    ));
    assert_eq!(twin.stats().tasks_stopped, 1);
}

#[tokio::test]
async fn stop_task_the_service_scheduler_launches_a_replacement() {
    let twin = Twin::new(web_with_a_static_port(), config(7));
    let t0 = twin.now();
    let old = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.stop_task(&old, "move web off a").await.unwrap();
    assert_eq!(
        twin.snapshot().tasks.len(),
        2,
        "nothing is placed before the scheduler runs"
    );

    // First tick: one replacement, PENDING, on the only instance where port 8080 is free.
    twin.advance(TICK);
    let s = twin.snapshot();
    let new = created_after(&s, t0);
    assert_eq!(new.len(), 1, "{new:#?}");
    let new = new[0].clone();
    assert_eq!(where_is(&s, &new), "c", "a still holds 8080 until STOPPED, b runs web");
    assert_eq!(new.last_status, TaskStatus::Pending);
    assert_eq!(new.desired_status, TaskStatus::Running);
    assert_eq!(new.group.as_deref(), Some("service:web"));
    assert_eq!(
        new.started_by.as_deref(),
        Some("ecs-svc/web"),
        "started by the primary deployment"
    );
    assert_eq!(new.created_at, Some(t0 + secs(10)));
    assert_eq!(host_ports(&new), vec![8080]);
    assert_eq!(new.task_definition_arn, svc(&s, "web").task_definition.clone().unwrap());

    // Still PENDING until start_delay has passed since it was placed.
    twin.advance(Duration::from_secs(20));
    assert_eq!(task(&twin.snapshot(), &new.task_arn).last_status, TaskStatus::Pending);
    twin.advance(TICK);
    let s = twin.snapshot();
    let t = task(&s, &new.task_arn);
    assert_eq!(t.last_status, TaskStatus::Running, "RUNNING after start_delay");
    assert_eq!(t.started_at, Some(t0 + secs(40)));
    assert_eq!(live_of(&s, "web").len(), 2);
    assert_eq!(twin.stats().tasks_started, 1);
    assert_eq!(twin.stats().placement_failures, 0);
    assert!(twin.is_steady());
}

#[tokio::test]
async fn stop_task_resources_are_released_at_stopped_and_reserved_at_placement() {
    let twin = Twin::new(web_with_a_static_port(), config(7));
    let old = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    let s = twin.snapshot();
    for id in ["a", "b"] {
        assert_eq!(remaining(&s, id, resource::CPU), 2048 - 256);
        assert_eq!(remaining(&s, id, resource::MEMORY), 7680 - 512);
        assert_eq!(ports(&s, id), agent_ports_and(&[8080]));
    }
    assert_eq!(remaining(&s, "c", resource::CPU), 2048);
    assert_eq!(ports(&s, "c"), agent_ports_and(&[]));

    twin.stop_task(&old, "r").await.unwrap();
    // Placement reserves at once (PENDING); the stopping task keeps its reservation.
    twin.advance(TICK);
    let s = twin.snapshot();
    assert_eq!(remaining(&s, "c", resource::CPU), 2048 - 256, "reserved at placement");
    assert_eq!(remaining(&s, "c", resource::MEMORY), 7680 - 512);
    assert_eq!(ports(&s, "c"), agent_ports_and(&[8080]));
    assert_eq!(remaining(&s, "a", resource::CPU), 2048 - 256, "kept until STOPPED");
    assert_eq!(remaining(&s, "a", resource::MEMORY), 7680 - 512);
    assert_eq!(ports(&s, "a"), agent_ports_and(&[8080]));

    twin.advance(Duration::from_secs(20));
    let s = twin.snapshot();
    assert_eq!(task(&s, &old).last_status, TaskStatus::Stopped);
    assert_eq!(remaining(&s, "a", resource::CPU), 2048, "released at STOPPED");
    assert_eq!(remaining(&s, "a", resource::MEMORY), 7680);
    assert_eq!(ports(&s, "a"), agent_ports_and(&[]));
    assert_eq!(remaining(&s, "c", resource::CPU), 2048 - 256);
    assert_eq!(remaining(&s, "b", resource::CPU), 2048 - 256, "b untouched");
    assert_eq!(ports(&s, "b"), agent_ports_and(&[8080]));

    // Settled: nothing changes any more.
    twin.advance(Duration::from_secs(600));
    let s = twin.snapshot();
    assert_eq!(remaining(&s, "a", resource::CPU), 2048);
    assert_eq!(remaining(&s, "c", resource::CPU), 2048 - 256);
    assert_eq!(ports(&s, "c"), agent_ports_and(&[8080]));
}

#[tokio::test]
async fn stop_task_running_and_pending_counts_follow_on_instances_and_the_service() {
    let twin = Twin::new(web_with_a_static_port(), config(7));
    let old = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.stop_task(&old, "r").await.unwrap();

    // (seconds after the call, a running/pending, c running/pending, service running/pending)
    let expected = [
        (10, (1, 0), (0, 1), (1, 1)),
        (20, (1, 0), (0, 1), (1, 1)),
        (30, (0, 0), (0, 1), (1, 1)),
        (40, (0, 0), (1, 0), (2, 0)),
        (50, (0, 0), (1, 0), (2, 0)),
    ];
    for (at, a, c, web) in expected {
        twin.advance(TICK);
        let s = twin.snapshot();
        let count = |id: &str| (inst(&s, id).running_tasks_count, inst(&s, id).pending_tasks_count);
        assert_eq!(count("a"), a, "instance a at +{at}s");
        assert_eq!(count("c"), c, "instance c at +{at}s");
        assert_eq!(count("b"), (1, 0), "instance b at +{at}s");
        let w = svc(&s, "web");
        assert_eq!((w.running_count, w.pending_count), web, "service web at +{at}s");
        assert_eq!(w.desired_count, 2, "StopTask does not change desiredCount");
    }
}

// ---- §3 StopTask: minimumHealthyPercent does not apply ----

#[tokio::test]
async fn stop_task_minimum_healthy_percent_does_not_apply_so_a_singleton_drops_below_its_floor() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web").deployment(100, 200))
        .tasks("web", "a", 1)
        .snapshot();
    let twin = Twin::new(snap, config(3));
    let old = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.stop_task(&old, "r").await.unwrap();

    let mut running = Vec::new();
    for _ in 0..6 {
        twin.advance(TICK);
        running.push(svc(&twin.snapshot(), "web").running_count);
    }
    // Below the floor of 1 from the StopTask until the replacement (placed at +10 s) runs at +40 s.
    assert_eq!(running, vec![0, 0, 0, 1, 1, 1]);
    let stats = twin.stats();
    assert!(stats.floor_violations > 0);
    assert_eq!(stats.floor_violations, 3, "one per tick below the floor");
    assert_eq!(stats.floor_violators, vec!["web".to_owned()]);
    assert!(twin.is_steady());
}

// ---- §2 PENDING when nothing fits ----

#[tokio::test]
async fn pending_when_nothing_fits_the_replacement_is_retried_every_tick_and_placed_once_room_appears() {
    // `a` is disconnected (takes no placements); `b` is full with a standalone task.
    let snap = ClusterBuilder::new("c")
        .instance(instance("a").disconnected())
        .instance(instance("b").cpu(1024))
        .service(service("web").cpu(512))
        .tasks("web", "a", 1)
        .standalone_task("report", "b", 1024, 512)
        .snapshot();
    let twin = Twin::new(snap, config(5));
    let t0 = twin.now();
    let old = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.stop_task(&old, "r").await.unwrap();

    for k in 1..=3u64 {
        twin.advance(TICK);
        let s = twin.snapshot();
        assert_eq!(twin.stats().placement_failures, k, "one failed pass per tick");
        assert!(created_after(&s, t0).is_empty(), "nothing placed at tick {k}");
        assert_eq!(svc(&s, "web").running_count, 0);
    }
    // `a`'s agent is away, so the stopped task keeps running until it is back (docs/ecs.md: A disconnected agent).
    let s = twin.snapshot();
    let t = task(&s, &old);
    assert_eq!(
        (t.desired_status.clone(), t.last_status.clone()),
        (TaskStatus::Stopped, TaskStatus::Running)
    );
    assert_eq!(remaining(&twin.snapshot(), "b", resource::CPU), 0);

    // Room appears on b once the standalone task is STOPPED (30 s after the call).
    let report = standalone(&twin.snapshot(), "family:report").task_arn.clone();
    twin.stop_task(&report, "make room").await.unwrap();
    twin.advance(Duration::from_secs(20));
    assert_eq!(twin.stats().placement_failures, 5, "still retried while b is full");
    assert!(created_after(&twin.snapshot(), t0).is_empty());

    twin.advance(TICK);
    let s = twin.snapshot();
    assert_eq!(task(&s, &report).last_status, TaskStatus::Stopped);
    let new = created_after(&s, t0);
    assert_eq!(new.len(), 1);
    assert_eq!(where_is(&s, new[0]), "b");
    assert_eq!(new[0].last_status, TaskStatus::Pending);
    assert_eq!(remaining(&s, "b", resource::CPU), 1024 - 512);
    assert_eq!(
        twin.stats().placement_failures,
        5,
        "placed in the same pass the room appeared"
    );

    twin.advance(Duration::from_secs(30));
    let s = twin.snapshot();
    assert_eq!(task(&s, &new[0].task_arn).last_status, TaskStatus::Running);
    assert_eq!(svc(&s, "web").running_count, 1);
    assert_eq!(twin.stats().placement_failures, 5);
    assert!(!twin.is_steady(), "the old task still waits for a's agent");
    twin.set_agent_connected(&arn("a"), true).unwrap();
    twin.advance(TICK);
    assert_eq!(task(&twin.snapshot(), &old).last_status, TaskStatus::Stopped);
    assert!(twin.is_steady());
}

// ---- §3 UpdateService forceNewDeployment ----

#[tokio::test]
async fn force_new_deployment_with_maximum_200_starts_new_tasks_before_old_ones_stop() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .instance(instance("d"))
        .service(service("web").deployment(100, 200))
        .tasks("web", "a", 1)
        .tasks("web", "b", 1)
        .tasks("web", "c", 1)
        .snapshot();
    let twin = Twin::new(snap, config(11));
    let old: Vec<String> = tasks_of(&twin.snapshot(), "web")
        .iter()
        .map(|t| t.task_arn.clone())
        .collect();

    twin.force_new_deployment("web").await.unwrap();
    let s = twin.snapshot();
    let w = svc(&s, "web");
    assert_eq!(w.deployments.len(), 2);
    let new_id = primary_id(w);
    assert_ne!(new_id, "ecs-svc/web");
    assert_eq!(w.deployments[0].id, new_id);
    assert_eq!(w.deployments[0].rollout_state, Some(RolloutState::InProgress));
    assert_eq!(w.deployments[1].id, "ecs-svc/web");
    assert_eq!(w.deployments[1].status, DeploymentStatus::Active);

    let mut first_new_running = None;
    let mut first_old_stopping = None;
    for k in 1..=12 {
        twin.advance(TICK);
        let s = twin.snapshot();
        let healthy = healthy_of(&s, "web");
        assert!(healthy >= 3, "tick {k}: {healthy} healthy tasks, desired 3");
        assert!(svc(&s, "web").running_count >= 3, "tick {k}: runningCount");
        assert!(live_of(&s, "web").len() <= 6, "tick {k}: above maximumPercent");
        let new_running = tasks_of(&s, "web")
            .iter()
            .filter(|t| t.started_by.as_deref() == Some(new_id.as_str()) && t.last_status == TaskStatus::Running)
            .count();
        if new_running > 0 && first_new_running.is_none() {
            first_new_running = Some(k);
        }
        if old.iter().any(|a| task(&s, a).desired_status == TaskStatus::Stopped) && first_old_stopping.is_none() {
            first_old_stopping = Some(k);
            assert_eq!(new_running, 3, "all new tasks run before the first old one is stopped");
        }
    }
    assert_eq!(first_new_running, Some(4), "placed at +10 s, RUNNING at +40 s");
    assert_eq!(first_old_stopping, Some(4));

    let s = twin.snapshot();
    let w = svc(&s, "web");
    assert_eq!(w.deployments.len(), 1, "{:#?}", w.deployments);
    assert_eq!(w.deployments[0].id, new_id);
    assert_eq!(w.deployments[0].status, DeploymentStatus::Primary);
    assert_eq!(w.deployments[0].rollout_state, Some(RolloutState::Completed));
    assert_eq!(w.deployments[0].running_count, 3);
    assert_eq!((w.running_count, w.pending_count, w.desired_count), (3, 0, 3));
    let live = live_of(&s, "web");
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|t| t.started_by.as_deref() == Some(new_id.as_str())));
    assert!(live.iter().all(|t| t.last_status == TaskStatus::Running));
    for a in &old {
        assert_eq!(task(&s, a).last_status, TaskStatus::Stopped);
    }
    let stats = twin.stats();
    assert_eq!(stats.floor_violations, 0);
    assert_eq!((stats.tasks_started, stats.tasks_stopped), (3, 3));
    assert!(twin.is_steady());
}

#[tokio::test]
async fn force_new_deployment_with_maximum_100_minimum_50_stops_before_it_starts() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .instance(instance("d"))
        .service(service("web").deployment(50, 100))
        .tasks("web", "a", 1)
        .tasks("web", "b", 1)
        .tasks("web", "c", 1)
        .tasks("web", "d", 1)
        .snapshot();
    let twin = Twin::new(snap, config(13));
    let t0 = twin.now();
    let old: Vec<String> = tasks_of(&twin.snapshot(), "web")
        .iter()
        .map(|t| t.task_arn.clone())
        .collect();
    twin.force_new_deployment("web").await.unwrap();
    let new_id = primary_id(svc(&twin.snapshot(), "web"));

    let mut placed_seen = 0;
    for k in 1..=30 {
        twin.advance(TICK);
        let s = twin.snapshot();
        let live = live_of(&s, "web").len();
        assert!(live <= 4, "tick {k}: {live} live tasks, maximumPercent 100 of 4");
        let healthy = healthy_of(&s, "web");
        assert!(healthy >= 2, "tick {k}: {healthy} healthy, floor ceil(50% × 4) = 2");
        // Stop before start: every new task was placed while as many old ones were already being stopped.
        let new = created_after(&s, t0);
        let old_stopping = old
            .iter()
            .filter(|a| {
                s.tasks
                    .iter()
                    .any(|t| &t.task_arn == *a && t.desired_status == TaskStatus::Stopped)
            })
            .count();
        assert!(
            new.len() <= old_stopping,
            "tick {k}: more new tasks than old ones stopped"
        );
        placed_seen = placed_seen.max(new.len());
    }
    assert_eq!(placed_seen, 4);

    let s = twin.snapshot();
    let w = svc(&s, "web");
    assert_eq!(w.deployments.len(), 1);
    assert_eq!(w.deployments[0].id, new_id);
    assert_eq!(w.deployments[0].rollout_state, Some(RolloutState::Completed));
    let live = live_of(&s, "web");
    assert_eq!(live.len(), 4);
    assert!(live
        .iter()
        .all(|t| t.started_by.as_deref() == Some(new_id.as_str()) && t.last_status == TaskStatus::Running));
    assert_eq!(twin.stats().floor_violations, 0);
    assert!(twin.is_steady());
}

#[tokio::test]
async fn force_new_deployment_of_an_unknown_service_is_not_found() {
    let twin = Twin::new(web_with_a_static_port(), config(1));
    assert!(matches!(
        twin.force_new_deployment("nope").await,
        Err(EcsError::NotFound(_))
    ));
}

#[tokio::test]
async fn force_new_deployment_replaces_all_tasks_of_a_daemon_service() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("agent").daemon())
        .tasks("agent", "a", 1)
        .tasks("agent", "b", 1)
        .snapshot();
    let twin = Twin::new(snap, config(1));
    twin.force_new_deployment("agent").await.unwrap();
    let new_id = primary_id(svc(&twin.snapshot(), "agent"));
    twin.advance(Duration::from_secs(600));
    let s = twin.snapshot();
    let live = live_of(&s, "agent");
    assert_eq!(live.len(), 2);
    assert!(
        live.iter().all(|t| t.started_by.as_deref() == Some(new_id.as_str())),
        "{live:#?}"
    );
    let a = svc(&s, "agent");
    assert_eq!(a.deployments.len(), 1);
    assert_eq!(a.deployments[0].rollout_state, Some(RolloutState::Completed));
    assert!(twin.is_steady());
}

// ---- §3 UpdateContainerInstancesState DRAINING ----

#[tokio::test]
async fn draining_replaces_service_tasks_elsewhere_stops_daemons_and_leaves_standalone_tasks() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .service(service("web").deployment(100, 200))
        .service(service("agent").cpu(64).memory(64).daemon())
        .tasks("web", "a", 2)
        .tasks("agent", "a", 1)
        .tasks("agent", "b", 1)
        .tasks("agent", "c", 1)
        .standalone_task("report", "a", 128, 128)
        .snapshot();
    let twin = Twin::new(snap, config(17));
    let t0 = twin.now();
    let s = twin.snapshot();
    let old_web: Vec<String> = tasks_of(&s, "web").iter().map(|t| t.task_arn.clone()).collect();
    let daemon_a = only_task_on(&s, "agent", "a").task_arn.clone();
    let report = standalone(&s, "family:report").task_arn.clone();

    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();
    assert_eq!(inst(&twin.snapshot(), "a").status, InstanceStatus::Draining);

    for k in 1..=15 {
        twin.advance(TICK);
        let s = twin.snapshot();
        for t in created_after(&s, t0) {
            assert!(!on(t, "a"), "tick {k}: {} placed on the DRAINING instance", t.task_arn);
        }
        let live = live_of(&s, "web").len();
        assert!(live <= 4, "tick {k}: {live} live web tasks, maximumPercent 200 of 2");
        let healthy = healthy_of(&s, "web");
        assert!(healthy >= 2, "tick {k}: {healthy} healthy web tasks, floor 2");
        if k == 1 {
            let d = task(&s, &daemon_a);
            assert_eq!(
                d.desired_status,
                TaskStatus::Stopped,
                "daemon on a stopped at the first pass"
            );
            assert!(d.stopped_reason.is_some());
        }
    }

    let s = twin.snapshot();
    // Service tasks: replaced on b and c, the old ones stopped.
    let live = live_of(&s, "web");
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|t| !on(t, "a") && t.last_status == TaskStatus::Running));
    for a in &old_web {
        assert_eq!(task(&s, a).last_status, TaskStatus::Stopped);
    }
    // Daemon: stopped on a, not replaced there; b and c keep theirs.
    assert_eq!(task(&s, &daemon_a).last_status, TaskStatus::Stopped);
    assert!(live_of(&s, "agent").iter().all(|t| !on(t, "a")));
    assert_eq!(live_of(&s, "agent").len(), 2);
    // Standalone: untouched.
    let r = task(&s, &report);
    assert_eq!(
        (r.last_status.clone(), r.desired_status.clone()),
        (TaskStatus::Running, TaskStatus::Running)
    );
    assert_eq!(r.stopped_reason, None);
    let a = inst(&s, "a");
    assert_eq!(
        a.status,
        InstanceStatus::Draining,
        "stays DRAINING while a standalone task runs"
    );
    assert_eq!((a.running_tasks_count, a.pending_tasks_count), (1, 0));
    assert_eq!(remaining(&s, "a", resource::CPU), 2048 - 128);
    assert_eq!(twin.stats().floor_violations, 0);

    // DRAINING → ACTIVE is allowed.
    twin.set_instance_state(&arn("a"), InstanceState::Active).await.unwrap();
    assert_eq!(inst(&twin.snapshot(), "a").status, InstanceStatus::Active);
}

#[tokio::test]
async fn every_state_change_counts_in_the_instance_version_even_from_a_snapshot_without_one() {
    // The controller's drain ids name the version: without it counted, an instance could be drained once only.
    let twin = Twin::new(ClusterBuilder::new("c").instance(instance("a")).snapshot(), config(1));
    let version = || inst(&twin.snapshot(), "a").version;
    let before = version();
    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();
    let drained = version();
    twin.set_instance_state(&arn("a"), InstanceState::Active).await.unwrap();
    let active = version();
    assert!(
        before.unwrap_or(0) < drained.unwrap() && drained < active,
        "{before:?} {drained:?} {active:?}"
    );
}

#[tokio::test]
async fn draining_only_active_to_draining_and_draining_to_active_are_allowed() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("gone").status(InstanceStatus::Inactive))
        .instance(instance("new").status(InstanceStatus::Registering))
        .snapshot();
    let twin = Twin::new(snap, config(1));
    let invalid = |r: Result<(), EcsError>| matches!(r, Err(EcsError::Invalid(_)));

    // The state it is already in: success, and nothing changes (not even the instance's version).
    let version = inst(&twin.snapshot(), "a").version;
    twin.set_instance_state(&arn("a"), InstanceState::Active).await.unwrap();
    assert_eq!(
        inst(&twin.snapshot(), "a").version,
        version,
        "ACTIVE → ACTIVE changes nothing"
    );
    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();
    let version = inst(&twin.snapshot(), "a").version;
    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();
    assert_eq!(
        inst(&twin.snapshot(), "a").version,
        version,
        "DRAINING → DRAINING changes nothing"
    );
    assert_eq!(inst(&twin.snapshot(), "a").status, InstanceStatus::Draining);
    twin.set_instance_state(&arn("a"), InstanceState::Active).await.unwrap();
    assert_eq!(inst(&twin.snapshot(), "a").status, InstanceStatus::Active);
    for (id, status) in [("gone", "INACTIVE"), ("new", "REGISTERING")] {
        for (to, named) in [(InstanceState::Active, "ACTIVE"), (InstanceState::Draining, "DRAINING")] {
            let refused = twin.set_instance_state(&arn(id), to).await;
            assert!(invalid(refused.clone()), "{id} → {to:?}");
            let text = refused.unwrap_err().to_string();
            assert!(
                text.contains(&format!("is {status} and cannot be set to {named}")),
                "{text}"
            );
        }
    }
    let s = twin.snapshot();
    assert_eq!(inst(&s, "gone").status, InstanceStatus::Inactive);
    assert_eq!(inst(&s, "new").status, InstanceStatus::Registering);
    assert!(matches!(
        twin.set_instance_state(&arn("nope"), InstanceState::Draining).await,
        Err(EcsError::NotFound(_))
    ));
}

/// The agent starts and stops tasks, so a disconnect stops nothing: a task stopped meanwhile keeps running (its
/// replacement starts elsewhere) and stops once the agent is back; nothing is placed on the instance meanwhile
/// (docs/ecs.md: A disconnected agent).
#[tokio::test]
async fn a_disconnected_agent_stops_nothing_until_it_reconnects() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web").spread("instanceId").deployment(50, 200))
        .tasks("web", "a", 4)
        .snapshot();
    let twin = Twin::new(snap, config(3));
    twin.set_agent_connected(&arn("a"), false).unwrap();
    let stopped = only_task_on_any(&twin.snapshot(), "web", "a");
    twin.stop_task(&stopped, "move it").await.unwrap();
    twin.advance(Duration::from_secs(300));
    let s = twin.snapshot();
    let t = task(&s, &stopped);
    assert_eq!(
        (t.desired_status.clone(), t.last_status.clone()),
        (TaskStatus::Stopped, TaskStatus::Running)
    );
    assert_eq!(
        s.tasks
            .iter()
            .filter(|t| on(t, "a") && t.last_status == TaskStatus::Running)
            .count(),
        4,
        "every task on the disconnected instance still runs"
    );
    let replacement: Vec<&Task> = live_of(&s, "web").into_iter().filter(|t| !on(t, "a")).collect();
    assert_eq!(
        replacement.len(),
        1,
        "the replacement starts where an agent is connected"
    );
    assert!(on(replacement[0], "b"));

    twin.set_agent_connected(&arn("a"), true).unwrap();
    twin.advance(TICK);
    assert_eq!(
        task(&twin.snapshot(), &stopped).last_status,
        TaskStatus::Stopped,
        "stopped once the agent is back"
    );
}

/// Idle time is skipped, and skipping changes nothing: a settled cluster with a STOPPED task still in the retention
/// window and a task whose protection expires, advanced two hours with the skip and without, is the same at every
/// checkpoint, the retention and the expiry included.
#[tokio::test]
async fn idle_passes_are_skipped_and_the_cluster_is_the_same_as_ticking_through_them() {
    let build = |skip_idle: bool| {
        let snap = ClusterBuilder::new("c")
            .instance(instance("a"))
            .instance(instance("b"))
            .service(service("web").spread("instanceId"))
            .tasks("web", "a", 2)
            .tasks("web", "b", 2)
            .snapshot();
        Twin::new(snap, TwinConfig { skip_idle, ..config(9) })
    };
    let (skipping, ticking) = (build(true), build(false));
    for twin in [&skipping, &ticking] {
        let s = twin.snapshot();
        let stopped = only_task_on_any(&s, "web", "a");
        twin.stop_task(&stopped, "make one STOPPED").await.unwrap();
        let kept = only_task_on_any(&s, "web", "b");
        twin.set_task_protection(&kept, true, Duration::from_secs(1800))
            .unwrap();
    }
    for _ in 0..8 {
        skipping.advance(Duration::from_secs(900));
        ticking.advance(Duration::from_secs(900));
        assert!(
            skipping.snapshot() == ticking.snapshot(),
            "same cluster at {}",
            skipping.now()
        );
        assert_eq!(skipping.stats(), ticking.stats());
    }
    assert!(skipping.snapshot().protected_tasks.is_empty(), "the protection lapsed");
    assert!(
        skipping
            .snapshot()
            .tasks
            .iter()
            .all(|t| t.last_status != TaskStatus::Stopped),
        "the STOPPED task left the retention window"
    );
    assert!(
        skipping.skipped_passes() > 500,
        "{} passes skipped of 720",
        skipping.skipped_passes()
    );
    assert_eq!(ticking.skipped_passes(), 0);
}

/// A task of `name` on instance `id`.
fn only_task_on_any(snap: &Snapshot, name: &str, id: &str) -> String {
    snap.tasks
        .iter()
        .find(|t| t.service_name() == Some(name) && on(t, id))
        .unwrap_or_else(|| panic!("no {name} task on {id}"))
        .task_arn
        .clone()
}

#[tokio::test]
async fn draining_pending_service_tasks_stop_at_once() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web").deployment(100, 200))
        .tasks("web", "a", 1)
        .snapshot();
    let twin = Twin::new(snap, config(2));
    let t0 = twin.now();
    let old = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.stop_task(&old, "r").await.unwrap();
    twin.advance(TICK);
    let s = twin.snapshot();
    let pending = created_after(&s, t0)[0].clone();
    assert_eq!(pending.last_status, TaskStatus::Pending);
    let at = where_is(&s, &pending);

    twin.set_instance_state(&arn(&at), InstanceState::Draining)
        .await
        .unwrap();
    twin.advance(TICK);
    let t = task(&twin.snapshot(), &pending.task_arn).clone();
    assert_eq!(
        t.desired_status,
        TaskStatus::Stopped,
        "PENDING task on {at} not stopped at once: {t:#?}"
    );
    twin.advance(Duration::from_secs(60));
    assert_eq!(
        task(&twin.snapshot(), &pending.task_arn).last_status,
        TaskStatus::Stopped
    );
    assert_eq!(
        task(&twin.snapshot(), &pending.task_arn).started_at,
        None,
        "it never ran"
    );
}

#[tokio::test]
async fn draining_with_minimum_100_and_maximum_100_never_completes() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web").deployment(100, 100))
        .tasks("web", "a", 1)
        .snapshot();
    let twin = Twin::new(snap, config(19));
    let only = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();

    twin.advance(Duration::from_secs(4 * 3600));
    let s = twin.snapshot();
    let t = task(&s, &only);
    assert_eq!(t.last_status, TaskStatus::Running, "the drain cannot stop it");
    assert_eq!(t.desired_status, TaskStatus::Running);
    assert_eq!(tasks_of(&s, "web").len(), 1, "and cannot start a replacement first");
    let a = inst(&s, "a");
    assert_eq!(a.status, InstanceStatus::Draining);
    assert_eq!(a.running_tasks_count, 1);
    let stats = twin.stats();
    assert_eq!((stats.tasks_started, stats.tasks_stopped), (0, 0));
    assert_eq!(stats.floor_violations, 0);
}

// ---- §2 DAEMON services ----

#[tokio::test]
async fn daemon_one_task_per_active_connected_instance() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b").disconnected())
        .instance(instance("c").status(InstanceStatus::Draining))
        .instance(instance("d"))
        .service(service("agent").cpu(64).memory(64).daemon())
        .snapshot();
    let twin = Twin::new(snap, config(23));

    let per_instance = |s: &Snapshot| -> Vec<usize> {
        ["a", "b", "c", "d"]
            .iter()
            .map(|id| live_of(s, "agent").iter().filter(|t| on(t, id)).count())
            .collect()
    };
    twin.advance(TICK);
    let s = twin.snapshot();
    assert_eq!(
        per_instance(&s),
        vec![1, 0, 0, 1],
        "disconnected b and DRAINING c get none"
    );
    assert!(live_of(&s, "agent")
        .iter()
        .all(|t| t.last_status == TaskStatus::Pending));
    twin.advance(Duration::from_secs(300));
    let s = twin.snapshot();
    assert_eq!(per_instance(&s), vec![1, 0, 0, 1], "still one each, never two");
    assert!(live_of(&s, "agent")
        .iter()
        .all(|t| t.last_status == TaskStatus::Running));
    let d = svc(&s, "agent");
    assert_eq!((d.running_count, d.pending_count, d.desired_count), (2, 0, 2));
    assert_eq!(twin.stats().tasks_started, 2);

    // c becomes ACTIVE: it gets one; a becomes DRAINING: its daemon stops and moves nowhere.
    twin.set_instance_state(&arn("c"), InstanceState::Active).await.unwrap();
    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();
    twin.advance(Duration::from_secs(300));
    let s = twin.snapshot();
    assert_eq!(per_instance(&s), vec![0, 0, 1, 1]);
    assert!(live_of(&s, "agent")
        .iter()
        .all(|t| t.last_status == TaskStatus::Running));
    assert_eq!(svc(&s, "agent").desired_count, 2);
    assert_eq!(twin.stats().tasks_started, 3);
    assert_eq!(twin.stats().tasks_stopped, 1);
}

// ---- determinism (seeded tie-breaks, the twin's own clock) ----

async fn script(seed: u64) -> Vec<(Snapshot, ecs_rebalancer::twin::TwinStats)> {
    let mut b = ClusterBuilder::new("c");
    for id in ["a", "b", "c", "d", "e", "f"] {
        b = b.instance(instance(id));
    }
    let snap = b
        .service(service("web"))
        .service(service("api").random())
        .tasks("web", "a", 3)
        .tasks("api", "b", 3)
        .snapshot();
    let twin = Twin::new(snap, config(seed));
    let mut out = Vec::new();
    let web: Vec<String> = tasks_of(&twin.snapshot(), "web")
        .iter()
        .map(|t| t.task_arn.clone())
        .collect();
    twin.stop_task(&web[0], "one").await.unwrap();
    twin.advance(Duration::from_secs(15));
    out.push((twin.snapshot(), twin.stats()));
    twin.force_new_deployment("api").await.unwrap();
    twin.advance(Duration::from_secs(45));
    out.push((twin.snapshot(), twin.stats()));
    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();
    twin.advance(Duration::from_secs(120));
    out.push((twin.snapshot(), twin.stats()));
    twin.set_instance_state(&arn("a"), InstanceState::Active).await.unwrap();
    twin.force_new_deployment("web").await.unwrap();
    twin.advance(Duration::from_secs(300));
    out.push((twin.snapshot(), twin.stats()));
    out
}

#[tokio::test]
async fn determinism_same_seed_and_same_calls_give_identical_snapshots() {
    let one = script(42).await;
    let two = script(42).await;
    assert_eq!(one.len(), two.len());
    for (k, (x, y)) in one.iter().zip(&two).enumerate() {
        assert_eq!(x.0, y.0, "snapshot {k} differs");
        assert_eq!(x.1, y.1, "stats {k} differ");
        assert_eq!(
            serde_json::to_string(&x.0).unwrap(),
            serde_json::to_string(&y.0).unwrap()
        );
    }
    // The script did exercise the scheduler.
    let (last, stats) = one.last().unwrap();
    assert!(stats.tasks_started >= 7, "{stats:?}");
    assert_eq!(live_of(last, "web").len(), 3);
    assert_eq!(live_of(last, "api").len(), 3);
}

// ---- §2 host ports ----

#[tokio::test]
async fn ports_a_static_host_port_is_never_bound_twice_on_one_instance() {
    let ids = ["a", "b", "c", "d"];
    let mut b = ClusterBuilder::new("c");
    for id in ids {
        b = b.instance(instance(id));
    }
    let snap = b
        .service(service("web").port(Some(8080), 80, Protocol::Tcp).deployment(100, 200))
        .tasks("web", "a", 1)
        .tasks("web", "b", 1)
        .snapshot();
    let twin = Twin::new(snap, config(29));

    let check = |s: &Snapshot, when: &str| {
        for id in ids {
            let bound: Vec<&Task> = s
                .tasks
                .iter()
                .filter(|t| on(t, id) && t.last_status != TaskStatus::Stopped && host_ports(t).contains(&8080))
                .collect();
            assert!(bound.len() <= 1, "{when}: {} tasks bound to 8080 on {id}", bound.len());
            let listed = ports(s, id).iter().filter(|p| **p == 8080).count();
            assert_eq!(
                listed,
                bound.len(),
                "{when}: PORTS on {id} disagrees with the tasks bound"
            );
        }
    };

    // Rolling deployment with room for 4: the new tasks can only go where 8080 is free (c and d).
    twin.force_new_deployment("web").await.unwrap();
    for k in 1..=10 {
        twin.advance(TICK);
        check(&twin.snapshot(), &format!("first deployment, tick {k}"));
    }
    let s = twin.snapshot();
    let mut at: Vec<String> = live_of(&s, "web").iter().map(|t| where_is(&s, t)).collect();
    at.sort();
    assert_eq!(at, vec!["c", "d"]);

    // A second one goes back to a and b.
    twin.force_new_deployment("web").await.unwrap();
    for k in 1..=10 {
        twin.advance(TICK);
        check(&twin.snapshot(), &format!("second deployment, tick {k}"));
    }
    let s = twin.snapshot();
    let mut at: Vec<String> = live_of(&s, "web").iter().map(|t| where_is(&s, t)).collect();
    at.sort();
    assert_eq!(at, vec!["a", "b"]);

    // StopTask: the replacement cannot share the port the stopping task still holds.
    let victim = live_of(&s, "web")
        .into_iter()
        .find(|t| on(t, "a"))
        .expect("web on a")
        .task_arn
        .clone();
    let before = twin.now();
    twin.stop_task(&victim, "r").await.unwrap();
    for k in 1..=6 {
        twin.advance(TICK);
        check(&twin.snapshot(), &format!("after StopTask, tick {k}"));
    }
    let s = twin.snapshot();
    let new = created_after(&s, before);
    assert_eq!(new.len(), 1);
    assert!(["c", "d"].contains(&where_is(&s, new[0]).as_str()));
    assert_eq!(twin.stats().placement_failures, 0);
    assert_eq!(
        twin.stats().floor_violations,
        3,
        "only the StopTask dropped web below its floor"
    );
}

// ---- the snapshot format and steadiness ----

#[tokio::test]
async fn snapshot_round_trips_through_save_and_load_and_is_steady_after_things_settle() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a").az("eu-west-1a"))
        .instance(instance("b").az("eu-west-1b"))
        .instance(instance("c").az("eu-west-1c"))
        .service(
            service("web")
                .port(Some(8080), 80, Protocol::Tcp)
                .spread("attribute:ecs.availability-zone"),
        )
        .service(service("agent").cpu(64).memory(64).daemon())
        .tasks("web", "a", 1)
        .tasks("web", "b", 1)
        .tasks("agent", "a", 1)
        .tasks("agent", "b", 1)
        .tasks("agent", "c", 1)
        .standalone_task("report", "c", 256, 256)
        .snapshot();
    let twin = Twin::new(snap, config(31));
    assert!(twin.is_steady(), "a built cluster starts steady");
    let dir = tempfile::tempdir().unwrap();

    let round_trip = |s: &Snapshot, name: &str| {
        let path = dir.path().join(name);
        s.save(&path).unwrap();
        let loaded = Snapshot::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&loaded, s, "{name} does not round-trip");
    };

    let web_a = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.stop_task(&web_a, "action 7").await.unwrap();
    twin.force_new_deployment("web").await.unwrap();
    twin.set_instance_state(&arn("b"), InstanceState::Draining)
        .await
        .unwrap();
    twin.advance(TICK);
    assert!(!twin.is_steady(), "mid-flight");
    let mid = twin.snapshot();
    assert_eq!(mid.captured_at, Some(twin.now()));
    assert!(mid.tasks.iter().any(|t| t.last_status == TaskStatus::Pending));
    assert!(mid.tasks.iter().any(|t| t.stopping_at.is_some()));
    round_trip(&mid, "mid.json");
    assert_eq!(twin.observe().await.unwrap(), mid, "observe is the snapshot");

    twin.set_instance_state(&arn("b"), InstanceState::Active).await.unwrap();
    twin.advance(Duration::from_secs(600));
    assert!(twin.is_steady(), "settled");
    let end = twin.snapshot();
    assert!(end
        .tasks
        .iter()
        .any(|t| t.stopped_at.is_some() && t.stop_code.is_some()));
    round_trip(&end, "end.json");
    assert_eq!(
        svc(&end, "web").deployments[0].rollout_state,
        Some(RolloutState::Completed)
    );
    assert_eq!(live_of(&end, "web").len(), 2);
    assert_eq!(live_of(&end, "agent").len(), 3);

    // A twin restarted from the saved file is steady too, at the saved time.
    let again = Twin::new(Snapshot::load(&dir.path().join("end.json")).unwrap(), config(31));
    assert!(again.is_steady());
    assert_eq!(again.now(), twin.now());
}

#[tokio::test]
async fn stop_task_a_task_already_stopping_in_the_snapshot_stops_within_the_stop_timeout() {
    let snap = ClusterBuilder::new("c")
        .instance(instance("a"))
        .service(service("web"))
        .tasks("web", "a", 1)
        .stopping_task("web", "a")
        .snapshot();
    let twin = Twin::new(snap, config(1));
    twin.advance(Duration::from_secs(60));
    let s = twin.snapshot();
    let stopping: Vec<&Task> = tasks_of(&s, "web")
        .into_iter()
        .filter(|t| t.desired_status == TaskStatus::Stopped)
        .collect();
    assert_eq!(stopping.len(), 1);
    assert_eq!(stopping[0].last_status, TaskStatus::Stopped, "{:#?}", stopping[0]);
    assert!(twin.is_steady());
}

// ---- §3 Task scale-in protection ----
// https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html: protection keeps a task
// from "being terminated by scale-in events from either Service Auto Scaling or deployments"; in a rolling update
// "tasks running older version will not be terminated until protectionEnabled is unset or expires". Draining is
// neither, and the draining page makes no exception for protected tasks.

/// `web` with one task on each of `a`, `b`, `c`, and an empty `d`.
fn web_on_three(min: u32, max: u32) -> Snapshot {
    ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .instance(instance("d"))
        .service(service("web").deployment(min, max))
        .tasks("web", "a", 1)
        .tasks("web", "b", 1)
        .tasks("web", "c", 1)
        .snapshot()
}

#[tokio::test]
async fn protection_a_rolling_deployment_stops_no_protected_task_until_its_protection_expires() {
    let twin = Twin::new(web_on_three(100, 200), config(5));
    let old: Vec<String> = tasks_of(&twin.snapshot(), "web")
        .iter()
        .map(|t| t.task_arn.clone())
        .collect();
    twin.set_task_protection(&old[0], true, Duration::from_secs(300))
        .unwrap();
    twin.force_new_deployment("web").await.unwrap();
    let new_id = primary_id(svc(&twin.snapshot(), "web"));

    twin.advance(Duration::from_secs(120));
    let s = twin.snapshot();
    assert_eq!(
        task(&s, &old[0]).last_status,
        TaskStatus::Running,
        "protected: left running"
    );
    assert_eq!(task(&s, &old[0]).desired_status, TaskStatus::Running);
    for a in &old[1..] {
        assert_eq!(task(&s, a).last_status, TaskStatus::Stopped, "unprotected: replaced");
    }
    let new = live_of(&s, "web")
        .iter()
        .filter(|t| t.started_by.as_deref() == Some(new_id.as_str()))
        .count();
    assert_eq!(
        new, 3,
        "the new deployment's tasks start within maximumPercent all the same"
    );
    let w = svc(&s, "web");
    assert_eq!(w.deployments.len(), 2, "the old deployment still has a task");
    assert_eq!(w.deployments[0].rollout_state, Some(RolloutState::InProgress));

    // Protection lapses at +5 min on the twin's clock; the old task then stops and the rollout completes.
    twin.advance(Duration::from_secs(300));
    let s = twin.snapshot();
    assert_eq!(task(&s, &old[0]).last_status, TaskStatus::Stopped);
    let w = svc(&s, "web");
    assert_eq!(w.deployments.len(), 1);
    assert_eq!(w.deployments[0].rollout_state, Some(RolloutState::Completed));
    assert!(s.protected_tasks.is_empty(), "lapsed protection is off");
}

#[tokio::test]
async fn protection_scale_in_stops_unprotected_tasks_only() {
    let twin = Twin::new(web_on_three(100, 200), config(5));
    let old: Vec<String> = tasks_of(&twin.snapshot(), "web")
        .iter()
        .map(|t| t.task_arn.clone())
        .collect();
    twin.set_task_protection(&old[0], true, Duration::from_secs(3600))
        .unwrap();
    twin.set_task_protection(&old[1], true, Duration::from_secs(3600))
        .unwrap();
    twin.set_desired_count("web", 1).unwrap();
    twin.advance(Duration::from_secs(120));
    let s = twin.snapshot();
    assert_eq!(
        task(&s, &old[2]).last_status,
        TaskStatus::Stopped,
        "the unprotected task goes"
    );
    for a in &old[..2] {
        assert_eq!(
            task(&s, a).last_status,
            TaskStatus::Running,
            "protected: kept above desired"
        );
    }
    assert_eq!(svc(&s, "web").running_count, 2);
}

#[tokio::test]
async fn protection_draining_stops_protected_tasks_like_any_other() {
    let twin = Twin::new(web_on_three(50, 200), config(5));
    let on_a = only_task_on(&twin.snapshot(), "web", "a").task_arn.clone();
    twin.set_task_protection(&on_a, true, Duration::from_secs(3600))
        .unwrap();
    twin.set_instance_state(&arn("a"), InstanceState::Draining)
        .await
        .unwrap();
    twin.advance(Duration::from_secs(120));
    let s = twin.snapshot();
    assert_eq!(
        task(&s, &on_a).last_status,
        TaskStatus::Stopped,
        "draining makes no exception"
    );
    assert_eq!(live_of(&s, "web").len(), 3, "replaced elsewhere");
    assert!(live_of(&s, "web").iter().all(|t| !on(t, "a")));
}

// ---- Loading ----

fn web_on_a_and_b() -> Snapshot {
    ClusterBuilder::new("c")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .service(service("web"))
        .tasks("web", "a", 1)
        .tasks("web", "b", 1)
        .snapshot()
}

fn unique_task_arns(snap: &Snapshot) -> bool {
    let arns: std::collections::BTreeSet<&str> = snap.tasks.iter().map(|t| t.task_arn.as_str()).collect();
    arns.len() == snap.tasks.len()
}

/// A twin restarted from the state another twin saved (`twin serve --state-out`, then `twin serve` on that file)
/// makes up only ids that are free: a task ARN used again would leave two tasks with one ARN, which the scheduler
/// cannot index, and a deployment id used again would make a forced deployment replace nothing.
#[tokio::test]
async fn a_twin_restarted_from_saved_state_makes_up_only_fresh_task_arns_and_deployment_ids() {
    let first = Twin::new(web_on_a_and_b(), config(3));
    first.force_new_deployment("web").await.unwrap();
    first.advance(Duration::from_secs(300));
    assert!(first.is_steady());
    let saved = first.snapshot();
    let before: Vec<String> = live_of(&saved, "web").iter().map(|t| t.task_arn.clone()).collect();
    let old_primary = primary_id(svc(&saved, "web"));

    let again = Twin::new(saved, config(3));
    again.force_new_deployment("web").await.unwrap();
    again.advance(Duration::from_secs(300));
    let s = again.snapshot();
    assert!(unique_task_arns(&s), "{:#?}", s.tasks);
    assert_ne!(primary_id(svc(&s, "web")), old_primary, "a fresh deployment id");
    let after = live_of(&s, "web");
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|t| !before.contains(&t.task_arn)),
        "the forced deployment replaced every task: {before:?} → {after:#?}"
    );
    assert!(again.is_steady());

    // And a replacement after StopTask is placed and indexed like any task.
    again.stop_task(&after[0].task_arn, "again").await.unwrap();
    again.advance(Duration::from_secs(120));
    let s = again.snapshot();
    assert!(unique_task_arns(&s), "{:#?}", s.tasks);
    assert_eq!(live_of(&s, "web").len(), 2);
    assert!(again.is_steady());
}

/// A snapshot with two tasks of one ARN cannot be scheduled (the scheduler indexes tasks by ARN): it is refused when
/// the twin is made, naming the ARN, instead of a twin whose scheduler never runs.
#[test]
fn a_snapshot_with_a_duplicate_arn_is_refused_at_load_naming_it() {
    let mut snap = web_on_a_and_b();
    let first = snap.tasks[0].task_arn.clone();
    snap.tasks[1].task_arn = first.clone();
    let Err(e) = Twin::try_new(snap.clone(), config(1)) else {
        panic!("a duplicate task ARN was accepted");
    };
    assert_eq!(
        e.to_string(),
        format!("tasks[1]: duplicate taskArn {first:?}, first seen at tasks[0]")
    );
    let panic = std::panic::catch_unwind(|| Twin::new(snap, config(1)))
        .map(|_| ())
        .unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("the twin cannot run this snapshot") && message.contains(&first),
        "{message}"
    );

    let mut snap = web_on_a_and_b();
    snap.container_instances[2].container_instance_arn = snap.container_instances[0].container_instance_arn.clone();
    let e = Twin::try_new(snap, config(1))
        .err()
        .expect("a duplicate instance ARN was accepted");
    assert!(e.to_string().contains("duplicate containerInstanceArn"), "{e}");
}

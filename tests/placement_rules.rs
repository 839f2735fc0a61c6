//! The placement engine, one ECS rule per test (docs/ecs.md: Container instances, Placement). Each cluster is built with the test builders,
//! which keep ECS's bookkeeping: a placed task reserves CPU, memory and host ports in `remainingResources`.

use crate::common;

use std::path::Path;

use ecs_rebalancer::model::{Cluster, InstanceIdx, InstanceStatus, NetworkMode, Protocol, TaskIdx};
use ecs_rebalancer::placement::{Misfit, Overlay, Placement, PlacementIndex, Rejection, ServicePlacement};
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder, ServiceBuilder};

/// Where one new task of `service` goes, as instance ids (`i-<id>` without the prefix), with the overlay.
fn place_with(cluster: &Cluster, name: &str, overlay: &Overlay) -> (Placement, Vec<String>, Vec<String>) {
    let index = PlacementIndex::new(cluster);
    let request = index.request_for_service(cluster.service(name).unwrap()).unwrap();
    let p = index.place(&request, overlay);
    let ids = |v: &[InstanceIdx]| v.iter().map(|&i| id(cluster, i.get())).collect();
    let (feasible, candidates) = (ids(&p.feasible), ids(&p.candidates));
    (p, feasible, candidates)
}

fn place(cluster: &Cluster, name: &str) -> (Placement, Vec<String>, Vec<String>) {
    place_with(cluster, name, &Overlay::new())
}

fn id(cluster: &Cluster, i: usize) -> String {
    cluster.instances()[i]
        .ec2_instance_id
        .as_deref()
        .unwrap()
        .trim_start_matches("i-")
        .to_owned()
}

fn reason(cluster: &Cluster, p: &Placement, instance: &str) -> Rejection {
    p.rejected
        .iter()
        .find(|(i, _)| id(cluster, i.get()) == instance)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("{instance} was not rejected: {p:?}"))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

// ---- resources (docs/ecs.md: Container instances; Placement, step 1) ----

#[test]
fn resources_cpu_must_fit_the_remaining_cpu() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a").cpu(1024))
        .instance(instance("b").cpu(1024))
        .service(service("web").cpu(512).spread("instanceId"))
        .tasks("web", "a", 2)
        .build();
    let (p, feasible, _) = place(&c, "web");
    assert_eq!(feasible, s(&["b"]));
    assert_eq!(
        reason(&c, &p, "a"),
        Rejection::Resources(Misfit::Cpu { need: 512, free: 0 })
    );
}

#[test]
fn resources_memory_counts_the_reservation_not_the_hard_limit() {
    // 3 tasks × 1024 MiB reserved (hard limit 4096) on an instance of 4096 MiB: one more fits on reservation,
    // none would on the hard limit.
    let c = ClusterBuilder::new("t")
        .instance(instance("a").memory(4096))
        .service(service("web").memory(1024).memory_hard_limit(4096))
        .tasks("web", "a", 3)
        .build();
    let (_, feasible, _) = place(&c, "web");
    assert_eq!(feasible, s(&["a"]));
    let full = ClusterBuilder::new("t")
        .instance(instance("a").memory(4096))
        .service(service("web").memory(1024).memory_hard_limit(4096))
        .tasks("web", "a", 4)
        .build();
    let (p, _, _) = place(&full, "web");
    assert_eq!(
        reason(&full, &p, "a"),
        Rejection::Resources(Misfit::Memory { need: 1024, free: 0 })
    );
}

#[test]
fn resources_a_static_host_port_in_use_rules_the_instance_out() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web").port(Some(8080), 80, Protocol::Tcp))
        .tasks("web", "a", 1)
        .build();
    let (p, feasible, _) = place(&c, "web");
    assert_eq!(feasible, s(&["b"]));
    assert_eq!(reason(&c, &p, "a").to_string(), "host port 8080/tcp is taken");
}

#[test]
fn resources_agent_reserved_ports_are_taken_too() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .service(service("ssh").port(Some(22), 22, Protocol::Tcp))
        .build();
    let (p, feasible, _) = place(&c, "ssh");
    assert!(feasible.is_empty());
    assert_eq!(reason(&c, &p, "a").to_string(), "host port 22/tcp is taken");
}

#[test]
fn resources_dynamic_host_ports_never_conflict() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .service(service("web").port(None, 80, Protocol::Tcp))
        .tasks("web", "a", 3)
        .build();
    assert_eq!(place(&c, "web").1, s(&["a"]));
}

#[test]
fn resources_host_network_mode_binds_the_container_port() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(
            service("dns")
                .network_mode(NetworkMode::Host)
                .port(None, 53, Protocol::Udp),
        )
        .tasks("dns", "a", 1)
        .build();
    let (p, feasible, _) = place(&c, "dns");
    assert_eq!(feasible, s(&["b"]));
    assert_eq!(reason(&c, &p, "a").to_string(), "host port 53/udp is taken");
}

#[test]
fn resources_tcp_and_udp_ports_are_separate() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .service(service("tcp").port(Some(5353), 5353, Protocol::Tcp))
        .service(service("udp").port(Some(5353), 5353, Protocol::Udp))
        .tasks("tcp", "a", 1)
        .build();
    assert_eq!(place(&c, "udp").1, s(&["a"]));
}

#[test]
fn resources_gpus_must_be_free() {
    let c = ClusterBuilder::new("t")
        .instance(instance("cpu-only"))
        .instance(instance("gpu").gpus(2))
        .service(service("train").gpus(2))
        .build();
    let (p, feasible, _) = place(&c, "train");
    assert_eq!(feasible, s(&["gpu"]));
    assert_eq!(
        reason(&c, &p, "cpu-only").to_string(),
        "not enough GPUs: needs 2, 0 free"
    );
}

#[test]
fn resources_awsvpc_tasks_are_unpredictable_so_never_planned_on() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .service(service("api").network_mode(NetworkMode::Awsvpc))
        .build();
    let index = PlacementIndex::new(&c);
    let e = index.request_for_service(c.service("api").unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("awsvpc networking; ENI and trunking limits are not modelled"),
        "{e}"
    );
    let shown = ServicePlacement::new(&index, c.service("api").unwrap());
    assert!(shown.unpredictable.is_some() && shown.candidates.is_empty());
}

#[test]
fn resources_a_missing_task_definition_is_unpredictable() {
    let mut snap = ClusterBuilder::new("t")
        .instance(instance("a"))
        .service(service("web"))
        .snapshot();
    snap.task_definitions.clear();
    let c = Cluster::new(snap).unwrap();
    let e = PlacementIndex::new(&c)
        .request_for_service(c.service("web").unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("is not in the snapshot"), "{e}");
}

// ---- eligibility (docs/ecs.md: Container instances) ----

#[test]
fn eligibility_only_active_instances_accept_placements() {
    let c = ClusterBuilder::new("t")
        .instance(instance("active"))
        .instance(instance("draining").status(InstanceStatus::Draining))
        .instance(instance("registering").status(InstanceStatus::Registering))
        .instance(instance("future").status(InstanceStatus::Other("HIBERNATING".into())))
        .service(service("web"))
        .build();
    let (p, feasible, _) = place(&c, "web");
    assert_eq!(feasible, s(&["active"]));
    assert_eq!(reason(&c, &p, "draining").to_string(), "not ACTIVE (DRAINING)");
    assert_eq!(reason(&c, &p, "future").to_string(), "not ACTIVE (HIBERNATING)");
}

#[test]
fn eligibility_a_disconnected_agent_accepts_nothing() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a").disconnected())
        .instance(instance("b"))
        .service(service("web"))
        .build();
    let (p, feasible, _) = place(&c, "web");
    assert_eq!(feasible, s(&["b"]));
    assert_eq!(reason(&c, &p, "a"), Rejection::AgentDisconnected);
}

#[test]
fn eligibility_the_caller_can_exclude_an_instance_without_copying_the_cluster() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web"))
        .build();
    let mut overlay = Overlay::new();
    overlay.exclude(InstanceIdx(0), "being drained");
    let (p, feasible, _) = place_with(&c, "web", &overlay);
    assert_eq!(feasible, s(&["b"]));
    assert_eq!(reason(&c, &p, "a").to_string(), "excluded: being drained");
}

#[test]
fn overlay_a_stopped_task_gives_back_its_cpu_memory_and_ports() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a").cpu(512))
        .service(service("web").cpu(512).port(Some(8080), 80, Protocol::Tcp))
        .tasks("web", "a", 1)
        .build();
    assert!(place(&c, "web").1.is_empty());
    let task = c.tasks_of("web").next().unwrap();
    let mut overlay = Overlay::new();
    overlay.stop(&c, c.task_index(&task.task_arn).unwrap()).unwrap();
    assert_eq!(place_with(&c, "web", &overlay).1, s(&["a"]));
}

#[test]
fn overlay_a_started_task_takes_capacity_and_counts_for_its_group() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web").spread("instanceId"))
        .build();
    let index = PlacementIndex::new(&c);
    let request = index.request_for_service(c.service("web").unwrap()).unwrap();
    let mut overlay = Overlay::new();
    overlay.start(InstanceIdx(0), &request.group, request.footprint.clone());
    let p = index.place(&request, &overlay);
    assert_eq!(
        p.candidates,
        [InstanceIdx(1)],
        "instance a already has the pretended task"
    );
}

// ---- constraints (docs/ecs.md: Placement, step 2) ----

#[test]
fn distinct_instance_rules_out_instances_running_the_group() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .service(service("db").distinct_instance())
        .service(service("web"))
        .tasks("db", "a", 1)
        .tasks("web", "b", 1)
        .build();
    let (p, feasible, _) = place(&c, "db");
    assert_eq!(feasible, s(&["b", "c"]), "other services' tasks do not count");
    assert_eq!(
        reason(&c, &p, "a").to_string(),
        "distinctInstance: already runs a task of service:db"
    );
}

#[test]
fn distinct_instance_looks_at_desired_status_so_a_stopping_task_does_not_block() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .service(service("db").distinct_instance())
        .stopping_task("db", "a")
        .build();
    assert_eq!(place(&c, "db").1, s(&["a"]));
}

#[test]
fn member_of_constraints_from_the_service_and_the_task_definition_both_bind() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a").instance_type("m5.large").az("eu-west-1a"))
        .instance(instance("b").instance_type("m5.large").az("eu-west-1b"))
        .instance(instance("c").instance_type("c5.large").az("eu-west-1a"))
        .service(
            service("web")
                .member_of("attribute:ecs.instance-type =~ m5.*")
                .task_definition_member_of("attribute:ecs.availability-zone == eu-west-1a"),
        )
        .build();
    let (p, feasible, _) = place(&c, "web");
    assert_eq!(feasible, s(&["a"]));
    assert_eq!(
        reason(&c, &p, "b").to_string(),
        "memberOf(attribute:ecs.availability-zone == eu-west-1a) is false"
    );
    assert_eq!(
        reason(&c, &p, "c").to_string(),
        "memberOf(attribute:ecs.instance-type =~ m5.*) is false"
    );
}

#[test]
fn member_of_task_group_affinity_follows_the_overlay() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("agent").daemon())
        .service(service("app").member_of("task:group == service:agent"))
        .tasks("agent", "a", 1)
        .build();
    assert_eq!(place(&c, "app").1, s(&["a"]));
    let agent_task = c.task_index(&c.tasks_of("agent").next().unwrap().task_arn).unwrap();
    let mut overlay = Overlay::new();
    overlay.stop(&c, agent_task).unwrap();
    let (p, feasible, _) = place_with(&c, "app", &overlay);
    assert!(feasible.is_empty(), "with the agent gone, no instance qualifies");
    assert_eq!(
        reason(&c, &p, "a").to_string(),
        "memberOf(task:group == service:agent) is false"
    );
}

#[test]
fn member_of_running_tasks_count_sees_the_overlay() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web"))
        .service(service("quiet").member_of("runningTasksCount == 0"))
        .tasks("web", "a", 1)
        .build();
    assert_eq!(place(&c, "quiet").1, s(&["b"]));
    let mut overlay = Overlay::new();
    overlay.stop(&c, TaskIdx(0)).unwrap();
    assert_eq!(place_with(&c, "quiet", &overlay).1, s(&["a", "b"]));
}

// ---- strategies (docs/ecs.md: Placement, step 3) ----

#[test]
fn binpack_memory_chooses_the_instance_with_the_least_memory_left() {
    let c = ClusterBuilder::new("t")
        .instance(instance("big").memory(16384))
        .instance(instance("small").memory(8192))
        .instance(instance("used").memory(16384))
        .service(service("filler").memory(10240))
        .service(service("batch").memory(1024).binpack("memory"))
        .tasks("filler", "used", 1)
        .build();
    // Left: big 16384, small 8192, used 6144.
    assert_eq!(place(&c, "batch").2, s(&["used"]));
}

#[test]
fn binpack_ties_are_kept_as_a_set() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c").cpu(4096))
        .service(service("batch").binpack("cpu"))
        .build();
    assert_eq!(place(&c, "batch").2, s(&["a", "b"]));
}

#[test]
fn binpack_trap_the_replacement_of_a_stopped_task_lands_back_on_its_instance() {
    // The central pitfall (docs/ecs.md: Placement): stopping a task frees room on its own instance, and binpack prefers
    // the fullest instance that fits, which is that same instance.
    let c = ClusterBuilder::new("t")
        .instance(instance("hot"))
        .instance(instance("cold"))
        .service(service("batch").cpu(512).binpack("cpu"))
        .tasks("batch", "hot", 3)
        .build();
    let task = c.task_index(&c.tasks_of("batch").next().unwrap().task_arn).unwrap();
    let mut overlay = Overlay::new();
    overlay.stop(&c, task).unwrap();
    assert_eq!(place_with(&c, "batch", &overlay).2, s(&["hot"]));
}

#[test]
fn spread_instance_prefers_the_fewest_tasks_of_the_same_service() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c"))
        .service(service("web").spread("instanceId"))
        .service(service("other"))
        .tasks("web", "a", 2)
        .tasks("web", "b", 1)
        .tasks("other", "c", 5)
        .build();
    assert_eq!(
        place(&c, "web").2,
        s(&["c"]),
        "other services' tasks do not count for spread"
    );
}

#[test]
fn spread_host_is_an_alias_of_instance_id() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .service(service("web").spread("host"))
        .tasks("web", "a", 1)
        .build();
    assert_eq!(place(&c, "web").2, s(&["b"]));
}

#[test]
fn spread_attribute_counts_the_group_over_every_instance_with_the_value() {
    // AZ a has 2 web tasks (on a full instance), AZ b has 1: the new task goes to b, even though a1 is empty.
    let c = ClusterBuilder::new("t")
        .instance(instance("a0").az("a").cpu(512))
        .instance(instance("a1").az("a"))
        .instance(instance("b0").az("b"))
        .service(service("web").spread("attribute:ecs.availability-zone"))
        .tasks("web", "a0", 2)
        .tasks("web", "b0", 1)
        .build();
    let (_, feasible, candidates) = place(&c, "web");
    assert_eq!(feasible, s(&["a1", "b0"]));
    assert_eq!(candidates, s(&["b0"]));
}

#[test]
fn the_default_for_services_is_az_spread_then_the_instance_with_fewest_tasks() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a0").az("a"))
        .instance(instance("b0").az("b"))
        .instance(instance("b1").az("b"))
        .service(service("web"))
        .tasks("web", "a0", 2)
        .tasks("web", "b0", 1)
        .build();
    assert_eq!(place(&c, "web").2, s(&["b1"]));
}

#[test]
fn random_keeps_every_feasible_instance() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c").status(InstanceStatus::Draining))
        .service(service("web").random().binpack("cpu"))
        .tasks("web", "a", 3)
        .build();
    assert_eq!(place(&c, "web").2, s(&["a", "b"]), "random ends the chain");
}

#[test]
fn strategies_apply_in_list_order() {
    // AZ a: a0 with two web tasks and a filler (512 units left); AZ b: b0 empty, b1 with a filler (1024 left).
    // Spread first picks AZ b (no web tasks), then binpack the fuller of b0/b1; binpack first picks the fullest
    // instance overall.
    let build = |chain: fn(ServiceBuilder) -> ServiceBuilder| {
        ClusterBuilder::new("t")
            .instance(instance("a0").az("a"))
            .instance(instance("b0").az("b"))
            .instance(instance("b1").az("b"))
            .service(chain(service("web")))
            .service(service("filler").cpu(1024))
            .tasks("web", "a0", 2)
            .tasks("filler", "a0", 1)
            .tasks("filler", "b1", 1)
            .build()
    };
    let spread_first = build(|s| s.spread("attribute:ecs.availability-zone").binpack("cpu"));
    assert_eq!(place(&spread_first, "web").2, s(&["b1"]));
    let binpack_first = build(|s| s.binpack("cpu").spread("attribute:ecs.availability-zone"));
    assert_eq!(place(&binpack_first, "web").2, s(&["a0"]));
}

#[test]
fn nothing_fits_means_no_candidates_and_a_reason_for_every_instance() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a").cpu(128))
        .instance(instance("b").status(InstanceStatus::Draining))
        .service(service("web").cpu(256))
        .build();
    let (p, feasible, candidates) = place(&c, "web");
    assert!(
        feasible.is_empty() && candidates.is_empty(),
        "the task would stay PENDING"
    );
    assert_eq!(p.rejected.len(), 2);
}

// ---- daemons ----

#[test]
fn daemon_one_task_per_eligible_instance() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a"))
        .instance(instance("b"))
        .instance(instance("c").status(InstanceStatus::Draining))
        .service(service("agent").daemon())
        .tasks("agent", "a", 1)
        .build();
    let (p, feasible, candidates) = place(&c, "agent");
    assert_eq!(feasible, s(&["b"]));
    assert_eq!(candidates, s(&["b"]), "every instance without the daemon gets one");
    assert_eq!(
        reason(&c, &p, "a").to_string(),
        "daemon: already runs a task of service:agent"
    );
}

// ---- the placement command's answer ----

#[test]
fn service_placement_lists_arns_and_reasons() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a").cpu(256))
        .instance(instance("b"))
        .service(service("web").cpu(512))
        .build();
    let index = PlacementIndex::new(&c);
    let answer = ServicePlacement::new(&index, c.service("web").unwrap());
    let json = serde_json::to_value(&answer).unwrap();
    assert_eq!(json["service"], "web");
    assert_eq!(json["feasible"][0], c.instances()[1].container_instance_arn);
    assert_eq!(json["candidates"][0], c.instances()[1].container_instance_arn);
    assert_eq!(
        json["rejected"][0]["containerInstanceArn"],
        c.instances()[0].container_instance_arn
    );
    assert_eq!(
        json["rejected"][0]["reason"],
        "not enough CPU: needs 512 units, 256 free"
    );
    assert!(json.get("unpredictable").is_none());
}

#[test]
fn the_placement_command_answers_for_every_service_in_both_forms() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/snapshot-mixed.json");
    let run = |args: &[&str]| common::cli(Path::new("."), &[&["placement", "--snapshot", fixture], args].concat());
    let (code, stdout, _) = run(&["-o", "json"]);
    assert_eq!(code, 0);
    let all: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "worker", "agent"]);
    // web: static host port 8080 is taken on both ACTIVE instances, the third is DRAINING.
    assert_eq!(all[0]["feasible"], serde_json::json!([]));
    assert_eq!(all[0]["rejected"][0]["reason"], "host port 8080/tcp is taken");
    assert_eq!(all[0]["rejected"][2]["reason"], "not ACTIVE (DRAINING)");

    for service in ["web", "worker", "agent"] {
        let (code, stdout, _) = run(&["--service", service]);
        assert_eq!(code, 0, "{service}");
        assert!(
            stdout.starts_with(&format!("service {service}: a new task fits on")),
            "{stdout}"
        );
        let (code, stdout, _) = run(&["--service", service, "-o", "json"]);
        assert_eq!(code, 0);
        let one: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(one["service"], service);
    }
    let (code, _, stderr) = run(&["--service", "nope"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no service \"nope\"; the snapshot has: web, worker, agent"),
        "{stderr}"
    );
}

#[test]
fn overlay_stopping_a_task_twice_frees_it_once() {
    let c = ClusterBuilder::new("t")
        .instance(instance("a").cpu(768))
        .service(service("web").cpu(512))
        .service(service("big").cpu(1024))
        .tasks("web", "a", 1)
        .build();
    let mut overlay = Overlay::new();
    overlay.stop(&c, TaskIdx(0)).unwrap().stop(&c, TaskIdx(0)).unwrap();
    let index = PlacementIndex::new(&c);
    let request = index.request_for_service(c.service("big").unwrap()).unwrap();
    let p = index.place(&request, &overlay);
    assert_eq!(
        p.rejected[0].1.to_string(),
        "not enough CPU: needs 1024 units, 768 free"
    );
}

use super::*;

fn container(cpu: Option<&str>, memory: Option<&str>, reservation: Option<&str>) -> Container {
    Container {
        name: "c".into(),
        container_arn: None,
        last_status: None,
        cpu: cpu.map(Into::into),
        memory: memory.map(Into::into),
        memory_reservation: reservation.map(Into::into),
        network_bindings: vec![],
        gpu_ids: vec![],
    }
}

fn task(cpu: Option<&str>, memory: Option<&str>, containers: Vec<Container>) -> Task {
    serde_json::from_value::<Task>(serde_json::json!({
        "taskArn": "t", "taskDefinitionArn": "td", "lastStatus": "RUNNING", "desiredStatus": "RUNNING"
    }))
    .map(|mut t| {
        t.cpu = cpu.map(Into::into);
        t.memory = memory.map(Into::into);
        t.containers = containers;
        t
    })
    .unwrap()
}

#[test]
fn task_level_reservation_wins_over_the_containers_sum() {
    let t = task(
        Some("1024"),
        Some("2048"),
        vec![container(Some("256"), Some("512"), None)],
    );
    assert_eq!(t.cpu_units(), Some(1024));
    assert_eq!(t.memory_mib(), Some(2048));
}

#[test]
fn container_memory_reservation_is_preferred_over_the_hard_limit() {
    let t = task(
        None,
        None,
        vec![
            container(Some("128"), Some("1024"), Some("256")),
            container(None, Some("512"), None),
        ],
    );
    assert_eq!(t.cpu_units(), Some(128));
    assert_eq!(t.memory_mib(), Some(256 + 512));
}

#[test]
fn numbers_ecs_sends_as_strings_also_load_from_json_numbers() {
    let t: Task = serde_json::from_value(serde_json::json!({
        "taskArn": "t", "taskDefinitionArn": "td", "lastStatus": "RUNNING", "desiredStatus": "RUNNING",
        "cpu": 256, "containers": [{"name": "c", "cpu": 0, "memory": 512}]
    }))
    .unwrap();
    assert_eq!(t.cpu.as_deref(), Some("256"));
    assert_eq!(t.memory_mib(), Some(512));
    assert_eq!(serde_json::to_value(&t).unwrap()["cpu"], "256");
}

#[test]
fn service_deployment_percentages_default_like_ecs() {
    let s: Service = serde_json::from_value(serde_json::json!({
        "serviceArn": "a", "serviceName": "s", "status": "ACTIVE", "desiredCount": 2, "runningCount": 2
    }))
    .unwrap();
    assert_eq!(s.scheduling_strategy, SchedulingStrategy::Replica);
    assert_eq!((s.minimum_healthy_percent(), s.maximum_percent()), (100, 200));
}

#[test]
fn task_definition_sums_container_reservations_preferring_soft_limits() {
    let td: TaskDefinition = serde_json::from_value(serde_json::json!({
        "taskDefinitionArn": "td",
        "containerDefinitions": [
            {"name": "a", "cpu": 256, "memory": 1024, "memoryReservation": 512},
            {"name": "b", "memory": 256}
        ]
    }))
    .unwrap();
    assert_eq!(td.cpu_units(), 256);
    assert_eq!(td.memory_mib(), 768);
    assert_eq!(td.network_mode(), NetworkMode::Bridge);
}

//! ECS's answers in the model's types, field for field: the SDK's types to `crate::model`'s. Where the SDK reports
//! an absent number as 0, the model's `None` is restored where the field says which (`version`, a resource's value
//! by its `type`).

use aws_sdk_ecs::types as sdk;
use aws_smithy_types_convert::date_time::DateTimeExt as _;
use chrono::{DateTime, Utc};

use crate::model;

/// An SDK timestamp as the model's (none when out of chrono's range, which no ECS timestamp is).
fn time(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t?.to_chrono_utc().ok()
}

pub(super) fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// A protected task as ECS reported it. ECS turns `protectionEnabled` off itself when protection lapses, so the flag
/// is the truth at the observation; `expirationDate` is on ECS's clock. It is kept while it is still ahead of this
/// machine's clock; one already past here (a skewed clock, or `twin serve` on the snapshot's clock) is dropped
/// rather than let the planner take a task ECS calls protected for an unprotected one.
pub(super) fn protected_task(p: &sdk::ProtectedTask, observed_at: DateTime<Utc>) -> model::ProtectedTask {
    model::ProtectedTask {
        task_arn: p.task_arn().unwrap_or_default().to_owned(),
        protection_enabled: true,
        expiration_date: time(p.expiration_date()).filter(|t| *t > observed_at),
    }
}

/// The SDK reports absent numbers as 0, so the resource's `type` says which value is meant.
fn resource(r: &sdk::Resource) -> model::Resource {
    let kind = r.r#type();
    model::Resource {
        name: r.name().unwrap_or_default().to_owned(),
        kind: owned(kind),
        integer_value: (kind == Some("INTEGER")).then(|| i64::from(r.integer_value())),
        long_value: (kind == Some("LONG")).then(|| r.long_value()),
        double_value: (kind == Some("DOUBLE")).then(|| r.double_value()),
        string_set_value: r.string_set_value.clone(),
    }
}

fn tags(t: &[sdk::Tag]) -> Vec<model::Tag> {
    t.iter()
        .map(|t| model::Tag {
            key: t.key().unwrap_or_default().to_owned(),
            value: t.value().unwrap_or_default().to_owned(),
        })
        .collect()
}

pub(super) fn instance(i: &sdk::ContainerInstance) -> model::ContainerInstance {
    model::ContainerInstance {
        container_instance_arn: i.container_instance_arn().unwrap_or_default().to_owned(),
        ec2_instance_id: owned(i.ec2_instance_id()),
        status: model::InstanceStatus::from(i.status().unwrap_or("")),
        status_reason: owned(i.status_reason()),
        agent_connected: i.agent_connected(),
        registered_resources: i.registered_resources().iter().map(resource).collect(),
        remaining_resources: i.remaining_resources().iter().map(resource).collect(),
        attributes: i
            .attributes()
            .iter()
            .map(|a| model::Attribute {
                name: a.name().to_owned(),
                value: owned(a.value()),
            })
            .collect(),
        registered_at: time(i.registered_at()),
        version_info: i.version_info().map(|v| model::VersionInfo {
            agent_version: owned(v.agent_version()),
            agent_hash: owned(v.agent_hash()),
            docker_version: owned(v.docker_version()),
        }),
        running_tasks_count: u32::try_from(i.running_tasks_count()).unwrap_or(0),
        pending_tasks_count: u32::try_from(i.pending_tasks_count()).unwrap_or(0),
        capacity_provider_name: owned(i.capacity_provider_name()),
        version: (i.version() != 0).then_some(i.version()),
        tags: tags(i.tags()),
    }
}

fn protocol(p: Option<&sdk::TransportProtocol>) -> Option<model::Protocol> {
    p.map(|p| model::Protocol::from(p.as_str()))
}

fn port(p: Option<i32>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok())
}

pub(super) fn task(t: &sdk::Task) -> model::Task {
    model::Task {
        task_arn: t.task_arn().unwrap_or_default().to_owned(),
        cluster_arn: owned(t.cluster_arn()),
        container_instance_arn: owned(t.container_instance_arn()),
        task_definition_arn: t.task_definition_arn().unwrap_or_default().to_owned(),
        group: owned(t.group()),
        started_by: owned(t.started_by()),
        last_status: model::TaskStatus::from(t.last_status().unwrap_or("")),
        desired_status: model::TaskStatus::from(t.desired_status().unwrap_or("")),
        launch_type: t.launch_type().map(|l| l.as_str().to_owned()),
        capacity_provider_name: owned(t.capacity_provider_name()),
        availability_zone: owned(t.availability_zone()),
        cpu: owned(t.cpu()),
        memory: owned(t.memory()),
        created_at: time(t.created_at()),
        started_at: time(t.started_at()),
        stopping_at: time(t.stopping_at()),
        stopped_at: time(t.stopped_at()),
        stopped_reason: owned(t.stopped_reason()),
        stop_code: t.stop_code().map(|s| s.as_str().to_owned()),
        version: (t.version() != 0).then_some(t.version()),
        containers: t
            .containers()
            .iter()
            .map(|c| model::Container {
                name: c.name().unwrap_or_default().to_owned(),
                container_arn: owned(c.container_arn()),
                last_status: owned(c.last_status()),
                cpu: owned(c.cpu()),
                memory: owned(c.memory()),
                memory_reservation: owned(c.memory_reservation()),
                network_bindings: c
                    .network_bindings()
                    .iter()
                    .map(|b| model::NetworkBinding {
                        bind_ip: owned(b.bind_ip()),
                        container_port: port(b.container_port()),
                        host_port: port(b.host_port()),
                        protocol: protocol(b.protocol()),
                        container_port_range: owned(b.container_port_range()),
                        host_port_range: owned(b.host_port_range()),
                    })
                    .collect(),
                gpu_ids: c.gpu_ids().to_vec(),
            })
            .collect(),
        tags: tags(t.tags()),
    }
}

pub(super) fn service(s: &sdk::Service) -> model::Service {
    model::Service {
        service_arn: s.service_arn().unwrap_or_default().to_owned(),
        service_name: s.service_name().unwrap_or_default().to_owned(),
        cluster_arn: owned(s.cluster_arn()),
        status: s.status().unwrap_or_default().to_owned(),
        desired_count: u32::try_from(s.desired_count()).unwrap_or(0),
        running_count: u32::try_from(s.running_count()).unwrap_or(0),
        pending_count: u32::try_from(s.pending_count()).unwrap_or(0),
        launch_type: s.launch_type().map(|l| l.as_str().to_owned()),
        capacity_provider_strategy: s
            .capacity_provider_strategy()
            .iter()
            .map(|c| model::ecs::CapacityProviderStrategyItem {
                capacity_provider: c.capacity_provider().to_owned(),
                weight: u32::try_from(c.weight()).unwrap_or(0),
                base: u32::try_from(c.base()).unwrap_or(0),
            })
            .collect(),
        task_definition: owned(s.task_definition()),
        scheduling_strategy: s.scheduling_strategy().map_or(model::SchedulingStrategy::Replica, |x| {
            model::SchedulingStrategy::from(x.as_str())
        }),
        deployment_configuration: s.deployment_configuration().map(|d| model::DeploymentConfiguration {
            minimum_healthy_percent: d.minimum_healthy_percent().and_then(|v| u32::try_from(v).ok()),
            maximum_percent: d.maximum_percent().and_then(|v| u32::try_from(v).ok()),
            deployment_circuit_breaker: d
                .deployment_circuit_breaker()
                .map(|b| model::ecs::DeploymentCircuitBreaker {
                    enable: b.enable(),
                    rollback: b.rollback(),
                }),
        }),
        deployment_controller: s.deployment_controller().map(|d| model::ecs::DeploymentController {
            kind: d.r#type().as_str().to_owned(),
        }),
        placement_constraints: s
            .placement_constraints()
            .iter()
            .map(|p| model::PlacementConstraint {
                kind: model::PlacementConstraintType::from(p.r#type().map_or("", |t| t.as_str())),
                expression: owned(p.expression()),
            })
            .collect(),
        placement_strategy: s
            .placement_strategy()
            .iter()
            .map(|p| model::PlacementStrategy {
                kind: model::PlacementStrategyType::from(p.r#type().map_or("", |t| t.as_str())),
                field: owned(p.field()),
            })
            .collect(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| model::Deployment {
                id: d.id().unwrap_or_default().to_owned(),
                status: model::DeploymentStatus::from(d.status().unwrap_or("")),
                task_definition: owned(d.task_definition()),
                desired_count: u32::try_from(d.desired_count()).unwrap_or(0),
                running_count: u32::try_from(d.running_count()).unwrap_or(0),
                pending_count: u32::try_from(d.pending_count()).unwrap_or(0),
                failed_tasks: u32::try_from(d.failed_tasks()).unwrap_or(0),
                rollout_state: d.rollout_state().map(|r| model::RolloutState::from(r.as_str())),
                rollout_state_reason: owned(d.rollout_state_reason()),
                launch_type: d.launch_type().map(|l| l.as_str().to_owned()),
                created_at: time(d.created_at()),
                updated_at: time(d.updated_at()),
            })
            .collect(),
        created_at: time(s.created_at()),
        tags: tags(s.tags()),
        availability_zone_rebalancing: s.availability_zone_rebalancing().map(|a| a.as_str().to_owned()),
    }
}

pub(super) fn task_definition(d: &sdk::TaskDefinition) -> model::TaskDefinition {
    model::TaskDefinition {
        task_definition_arn: d.task_definition_arn().unwrap_or_default().to_owned(),
        family: owned(d.family()),
        revision: u32::try_from(d.revision()).ok(),
        network_mode: d.network_mode().map(|m| model::NetworkMode::from(m.as_str())),
        container_definitions: d
            .container_definitions()
            .iter()
            .map(|c| model::ContainerDefinition {
                name: c.name().unwrap_or_default().to_owned(),
                image: owned(c.image()),
                cpu: u32::try_from(c.cpu()).unwrap_or(0),
                memory: c.memory().and_then(|v| u32::try_from(v).ok()),
                memory_reservation: c.memory_reservation().and_then(|v| u32::try_from(v).ok()),
                essential: c.essential(),
                port_mappings: c
                    .port_mappings()
                    .iter()
                    .map(|p| model::PortMapping {
                        container_port: port(p.container_port()),
                        host_port: port(p.host_port()),
                        protocol: protocol(p.protocol()),
                        container_port_range: owned(p.container_port_range()),
                    })
                    .collect(),
                resource_requirements: c
                    .resource_requirements()
                    .iter()
                    .map(|r| model::ecs::ResourceRequirement {
                        kind: r.r#type().as_str().to_owned(),
                        value: r.value().to_owned(),
                    })
                    .collect(),
            })
            .collect(),
        placement_constraints: d
            .placement_constraints()
            .iter()
            .map(|p| model::PlacementConstraint {
                kind: model::PlacementConstraintType::from(p.r#type().map_or("", |t| t.as_str())),
                expression: owned(p.expression()),
            })
            .collect(),
        requires_compatibilities: d
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        cpu: owned(d.cpu()),
        memory: owned(d.memory()),
        status: d.status().map(|s| s.as_str().to_owned()),
    }
}

//! Owned, ECS-shaped types: what `aws ecs describe-*` prints, field for field, in ECS's camelCase.
//!
//! Only the fields the planner, the placement engine, the twin and the ledger read are modelled; every other field
//! ECS sends is ignored on load (serde's default), so a snapshot captured by a newer CLI still loads. A field that is
//! required here is one whose absence would make a decision unsafe (an instance without `agentConnected`, a task
//! without `lastStatus`): its absence is a load error naming the item, never a silent default.
//!
//! Numbers ECS sends as strings (`Task.cpu`, `Container.memoryReservation`, …) stay strings here so a snapshot
//! round-trips byte-for-byte in meaning; the typed readings live in the accessor methods, which return `None` for
//! an absent or unparsable value and leave the decision to the caller.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::enums::{
    DeploymentStatus, InstanceStatus, NetworkMode, PlacementConstraintType, PlacementStrategyType, Protocol,
    RolloutState, SchedulingStrategy, TaskStatus,
};
use super::{numeric, timestamp};

/// Resource names ECS uses in `registeredResources` / `remainingResources`.
pub mod resource {
    /// CPU units, 1,024 per vCPU.
    pub const CPU: &str = "CPU";
    /// Memory in MiB.
    pub const MEMORY: &str = "MEMORY";
    /// TCP host ports in use or reserved by the agent.
    pub const PORTS: &str = "PORTS";
    /// UDP host ports in use or reserved by the agent.
    pub const PORTS_UDP: &str = "PORTS_UDP";
    /// GPU ids.
    pub const GPU: &str = "GPU";
}

/// One entry of `registeredResources` / `remainingResources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_set_value: Option<Vec<String>>,
}

impl Resource {
    /// An `INTEGER` resource, as ECS reports CPU and MEMORY.
    pub fn integer(name: &str, value: i64) -> Self {
        Resource {
            name: name.to_owned(),
            kind: Some("INTEGER".into()),
            integer_value: Some(value),
            long_value: None,
            double_value: None,
            string_set_value: None,
        }
    }

    /// A `STRINGSET` resource, as ECS reports PORTS, PORTS_UDP and GPU.
    pub fn string_set<I: IntoIterator<Item = S>, S: Into<String>>(name: &str, values: I) -> Self {
        Resource {
            name: name.to_owned(),
            kind: Some("STRINGSET".into()),
            integer_value: None,
            long_value: None,
            double_value: None,
            string_set_value: Some(values.into_iter().map(Into::into).collect()),
        }
    }

    /// The numeric value, whichever of the typed fields carries it.
    pub fn number(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // resource amounts are far below 2^53
        self.integer_value
            .or(self.long_value)
            .map(|v| v as f64)
            .or(self.double_value)
    }
}

/// Looks up a resource by name in a resource list.
pub fn find_resource<'a>(resources: &'a [Resource], name: &str) -> Option<&'a Resource> {
    resources.iter().find(|r| r.name == name)
}

/// A key/value tag as ECS prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// An instance attribute (`ecs.availability-zone`, custom ones from `PutAttributes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
}

/// A container instance as `DescribeContainerInstances` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstance {
    pub container_instance_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    pub status: InstanceStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Required: an instance whose agent state is unknown cannot be judged able to take tasks.
    pub agent_connected: bool,
    pub registered_resources: Vec<Resource>,
    pub remaining_resources: Vec<Resource>,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_info: Option<VersionInfo>,
    #[serde(default)]
    pub running_tasks_count: u32,
    #[serde(default)]
    pub pending_tasks_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_provider_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl ContainerInstance {
    /// Only `ACTIVE` instances whose agent is connected accept placements (docs/ecs.md: Container instances).
    pub fn can_take_tasks(&self) -> bool {
        self.status == InstanceStatus::Active && self.agent_connected
    }

    /// The value of attribute `name`, if the instance has it with a value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.value.as_deref())
    }

    /// `ecs.availability-zone`, if the agent reported it.
    pub fn availability_zone(&self) -> Option<&str> {
        self.attribute("ecs.availability-zone")
    }

    pub fn registered(&self, name: &str) -> Option<&Resource> {
        find_resource(&self.registered_resources, name)
    }

    pub fn remaining(&self, name: &str) -> Option<&Resource> {
        find_resource(&self.remaining_resources, name)
    }

    /// Host ports (TCP or UDP) in use or reserved on the instance, from `remainingResources` as ECS keeps it.
    pub fn ports_in_use(&self, protocol: &Protocol) -> BTreeSet<u16> {
        let name = match protocol {
            Protocol::Udp => resource::PORTS_UDP,
            _ => resource::PORTS,
        };
        self.remaining(name)
            .and_then(|r| r.string_set_value.as_ref())
            .map(|ports| ports.iter().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// A host port binding of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    #[serde(rename = "bindIP", default, skip_serializing_if = "Option::is_none")]
    pub bind_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_range: Option<String>,
}

/// A container of a running task, as `DescribeTasks` returns it (numbers as strings, as ECS sends them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    #[serde(
        default,
        deserialize_with = "numeric::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu: Option<String>,
    #[serde(
        default,
        deserialize_with = "numeric::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    #[serde(
        default,
        deserialize_with = "numeric::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_reservation: Option<String>,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_ids: Vec<String>,
}

/// A task as `DescribeTasks` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    /// Absent for Fargate tasks; an EC2 task always has one once placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    pub task_definition_arn: String,
    /// `service:<name>` for service tasks, `family:<family>` for standalone tasks, or a custom group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    pub last_status: TaskStatus,
    pub desired_status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_provider_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(
        default,
        deserialize_with = "numeric::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu: Option<String>,
    #[serde(
        default,
        deserialize_with = "numeric::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// Where StopTask's `reason` lands; the controller writes its action id here (docs/ecs.md: StopTask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl Task {
    /// The service name when the task belongs to a service (`group` = `service:<name>`).
    pub fn service_name(&self) -> Option<&str> {
        self.group.as_deref().and_then(|g| g.strip_prefix("service:"))
    }

    /// A task counts against its instance while it is not yet stopped.
    pub fn is_live(&self) -> bool {
        !matches!(self.last_status, TaskStatus::Stopped | TaskStatus::Deleted)
    }

    /// The task's CPU reservation: the task-level value when set, else the sum over its containers.
    /// `None` when neither the task nor any container says (unknown is never zero).
    pub fn cpu_units(&self) -> Option<u32> {
        parse_units(self.cpu.as_deref()).or_else(|| {
            if self.containers.is_empty() {
                return None;
            }
            // A container without `cpu` reserves none (ECS treats it as 0 units).
            Some(
                self.containers
                    .iter()
                    .map(|c| parse_units(c.cpu.as_deref()).unwrap_or(0))
                    .sum(),
            )
        })
    }

    /// The task's memory reservation in MiB: the task-level value when set, else the sum over its containers,
    /// each container counting its `memoryReservation` when set and its `memory` otherwise (docs/ecs.md: Container instances).
    /// `None` when any container states neither.
    pub fn memory_mib(&self) -> Option<u32> {
        parse_units(self.memory.as_deref()).or_else(|| {
            if self.containers.is_empty() {
                return None;
            }
            self.containers
                .iter()
                .map(|c| parse_units(c.memory_reservation.as_deref()).or_else(|| parse_units(c.memory.as_deref())))
                .sum()
        })
    }
}

/// Parses an ECS numeric string (`"256"`); `None` for absent or non-numeric values.
fn parse_units(s: Option<&str>) -> Option<u32> {
    s.and_then(|s| s.trim().parse().ok())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCircuitBreaker {
    #[serde(default)]
    pub enable: bool,
    #[serde(default)]
    pub rollback: bool,
}

/// `Service.deploymentConfiguration`. ECS's defaults for a REPLICA service are 100 % / 200 %.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_healthy_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
}

/// A placement constraint, from a service or a task definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementConstraint {
    #[serde(rename = "type")]
    pub kind: PlacementConstraintType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// One rule of a service's placement strategy chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStrategy {
    #[serde(rename = "type")]
    pub kind: PlacementStrategyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One entry of `Service.deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub status: DeploymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(default)]
    pub desired_count: u32,
    #[serde(default)]
    pub running_count: u32,
    #[serde(default)]
    pub pending_count: u32,
    #[serde(default)]
    pub failed_tasks: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<RolloutState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderStrategyItem {
    pub capacity_provider: String,
    #[serde(default)]
    pub weight: u32,
    #[serde(default)]
    pub base: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentController {
    #[serde(rename = "type")]
    pub kind: String,
}

/// A service as `DescribeServices` returns it (with `--include TAGS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_arn: String,
    pub service_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    pub status: String,
    pub desired_count: u32,
    pub running_count: u32,
    #[serde(default)]
    pub pending_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(default = "SchedulingStrategy::default_replica")]
    pub scheduling_strategy: SchedulingStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_controller: Option<DeploymentController>,
    #[serde(default)]
    pub placement_constraints: Vec<PlacementConstraint>,
    #[serde(default)]
    pub placement_strategy: Vec<PlacementStrategy>,
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// `ENABLED` or `DISABLED`; absent on services created before the feature (docs/ecs.md: Availability Zone rebalancing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone_rebalancing: Option<String>,
}

impl SchedulingStrategy {
    fn default_replica() -> Self {
        SchedulingStrategy::Replica
    }
}

impl Service {
    /// The value of tag `key`, if the service carries it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    /// `minimumHealthyPercent`, with ECS's default of 100 for REPLICA and 0 for DAEMON services.
    pub fn minimum_healthy_percent(&self) -> u32 {
        self.deployment_configuration
            .as_ref()
            .and_then(|d| d.minimum_healthy_percent)
            .unwrap_or(match self.scheduling_strategy {
                SchedulingStrategy::Daemon => 0,
                _ => 100,
            })
    }

    /// `maximumPercent`, with ECS's default of 200 for REPLICA and 100 for DAEMON services.
    pub fn maximum_percent(&self) -> u32 {
        self.deployment_configuration
            .as_ref()
            .and_then(|d| d.maximum_percent)
            .unwrap_or(match self.scheduling_strategy {
                SchedulingStrategy::Daemon => 100,
                _ => 200,
            })
    }

    /// ECS's ceiling on running and pending tasks during a deployment or a drain: `maximumPercent` of the desired
    /// count, rounded down (`docs/ecs.md`, deployments).
    pub fn max_tasks(&self) -> u32 {
        u32::try_from(u64::from(self.maximum_percent()) * u64::from(self.desired_count) / 100).unwrap_or(u32::MAX)
    }

    /// Whether ECS can start a replacement before it stops a task: its ceiling is above the desired count. A
    /// `maximumPercent` above 100 is not enough: 150 % of one task rounds down to one.
    pub fn starts_first(&self) -> bool {
        self.max_tasks() > self.desired_count
    }
}

/// A container's port mapping in a task definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// Absent or 0 in `bridge` mode means a dynamic host port, which never conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port_range: Option<String>,
}

/// `resourceRequirements` entry (`GPU` counts, `InferenceAccelerator`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRequirement {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// A container definition inside a task definition (numbers as integers, as `DescribeTaskDefinition` prints them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub cpu: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_requirements: Vec<ResourceRequirement>,
}

/// A task definition as `DescribeTaskDefinition` returns it under `taskDefinition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    pub task_definition_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<NetworkMode>,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(default)]
    pub placement_constraints: Vec<PlacementConstraint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_compatibilities: Vec<String>,
    /// Task-level CPU units as a string; applies instead of the containers' sum when set.
    #[serde(
        default,
        deserialize_with = "numeric::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu: Option<String>,
    /// Task-level memory in MiB as a string; applies instead of the containers' sum when set.
    #[serde(
        default,
        deserialize_with = "numeric::string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl TaskDefinition {
    /// `networkMode`, defaulting to `bridge` as ECS does for EC2 Linux tasks.
    pub fn network_mode(&self) -> NetworkMode {
        self.network_mode.clone().unwrap_or(NetworkMode::Bridge)
    }

    /// CPU units a task of this definition reserves: task-level when set, else the containers' sum.
    pub fn cpu_units(&self) -> u32 {
        parse_units(self.cpu.as_deref()).unwrap_or_else(|| self.container_definitions.iter().map(|c| c.cpu).sum())
    }

    /// MiB a task of this definition reserves: task-level when set, else per container `memoryReservation`
    /// when set and `memory` otherwise (docs/ecs.md: Container instances).
    pub fn memory_mib(&self) -> u32 {
        parse_units(self.memory.as_deref()).unwrap_or_else(|| {
            self.container_definitions
                .iter()
                .map(|c| c.memory_reservation.or(c.memory).unwrap_or(0))
                .sum()
        })
    }
}

#[cfg(test)]
mod tests;

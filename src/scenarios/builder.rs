//! Clusters written in code: `ClusterBuilder::new("prod").instance(instance("a").cpu(2048))
//! .service(service("web").cpu(256))...`, with ECS's bookkeeping kept (a placed task reserves CPU, memory and host
//! ports in the instance's `remainingResources` and counts in `runningTasksCount`).
//!
//! The `demo` cluster and the other built-in scenarios are written with it; tests and benchmarks build their clusters
//! with it too.

use std::collections::HashMap;

use crate::model::ecs::resource;
use crate::model::{
    Attribute, Cluster, Container, ContainerDefinition, ContainerInstance, Deployment, DeploymentConfiguration,
    DeploymentStatus, InstanceStatus, NetworkBinding, NetworkMode, PlacementConstraint, PlacementConstraintType,
    PlacementStrategy, PlacementStrategyType, PortMapping, Protocol, Resource, RolloutState, SchedulingStrategy,
    Service, Snapshot, Task, TaskDefinition, TaskStatus, VersionInfo,
};

const ACCOUNT: &str = "arn:aws:ecs:eu-west-1:111122223333";
/// Ports the ECS agent reserves on every instance.
pub const AGENT_PORTS: [u16; 5] = [22, 2375, 2376, 51678, 51679];

/// A container instance under construction.
#[derive(Debug, Clone)]
pub struct InstanceBuilder {
    id: String,
    cpu: i64,
    memory: i64,
    gpus: usize,
    status: InstanceStatus,
    connected: bool,
    attributes: Vec<(String, Option<String>)>,
    agent_version: String,
    registered_at: String,
}

/// An `m5.large`-sized ACTIVE instance in `eu-west-1a`, named `id` (its EC2 id is `i-<id>`).
pub fn instance(id: &str) -> InstanceBuilder {
    InstanceBuilder {
        id: id.to_owned(),
        cpu: 2048,
        memory: 7680,
        gpus: 0,
        status: InstanceStatus::Active,
        connected: true,
        attributes: vec![
            ("ecs.availability-zone".into(), Some("eu-west-1a".into())),
            ("ecs.instance-type".into(), Some("m5.large".into())),
            ("ecs.os-type".into(), Some("linux".into())),
        ],
        agent_version: "1.89.0".into(),
        registered_at: "2026-11-20T10:00:00Z".into(),
    }
}

impl InstanceBuilder {
    pub fn cpu(mut self, units: i64) -> Self {
        self.cpu = units;
        self
    }
    pub fn memory(mut self, mib: i64) -> Self {
        self.memory = mib;
        self
    }
    pub fn gpus(mut self, n: usize) -> Self {
        self.gpus = n;
        self
    }
    pub fn status(mut self, s: InstanceStatus) -> Self {
        self.status = s;
        self
    }
    pub fn disconnected(mut self) -> Self {
        self.connected = false;
        self
    }
    pub fn az(self, az: &str) -> Self {
        self.attr("ecs.availability-zone", az)
    }
    pub fn instance_type(self, t: &str) -> Self {
        self.attr("ecs.instance-type", t)
    }
    pub fn agent_version(mut self, v: &str) -> Self {
        self.agent_version = v.to_owned();
        self
    }
    pub fn registered_at(mut self, t: &str) -> Self {
        self.registered_at = t.to_owned();
        self
    }
    /// Sets (or replaces) an attribute with a value.
    pub fn attr(mut self, name: &str, value: &str) -> Self {
        self.attributes.retain(|(n, _)| n != name);
        self.attributes.push((name.to_owned(), Some(value.to_owned())));
        self
    }
    /// Adds an attribute without a value (like `ecs.capability.*`).
    pub fn flag(mut self, name: &str) -> Self {
        self.attributes.push((name.to_owned(), None));
        self
    }

    pub fn arn(&self) -> String {
        format!("{ACCOUNT}:container-instance/test/{}", self.id)
    }

    fn build(&self) -> ContainerInstance {
        let ports = || Resource::string_set(resource::PORTS, AGENT_PORTS.iter().map(u16::to_string));
        let gpu_ids: Vec<String> = (0..self.gpus).map(|g| format!("GPU-{}-{g}", self.id)).collect();
        let mut registered = vec![
            Resource::integer(resource::CPU, self.cpu),
            Resource::integer(resource::MEMORY, self.memory),
            ports(),
            Resource::string_set(resource::PORTS_UDP, Vec::<String>::new()),
        ];
        if self.gpus > 0 {
            registered.push(Resource::string_set(resource::GPU, gpu_ids));
        }
        ContainerInstance {
            container_instance_arn: self.arn(),
            ec2_instance_id: Some(format!("i-{}", self.id)),
            status: self.status.clone(),
            status_reason: None,
            agent_connected: self.connected,
            remaining_resources: registered.clone(),
            registered_resources: registered,
            attributes: self
                .attributes
                .iter()
                .map(|(name, value)| Attribute {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            registered_at: chrono::DateTime::parse_from_rfc3339(&self.registered_at)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc)),
            version_info: Some(VersionInfo {
                agent_version: Some(self.agent_version.clone()),
                agent_hash: None,
                docker_version: None,
            }),
            running_tasks_count: 0,
            pending_tasks_count: 0,
            capacity_provider_name: None,
            version: Some(1),
            tags: Vec::new(),
        }
    }
}

/// A service (and its task definition) under construction.
#[derive(Debug, Clone)]
pub struct ServiceBuilder {
    name: String,
    cpu: u32,
    memory: u32,
    memory_hard: Option<u32>,
    gpus: u32,
    network_mode: Option<NetworkMode>,
    ports: Vec<(Option<u16>, u16, Protocol)>,
    strategy: Vec<PlacementStrategy>,
    constraints: Vec<PlacementConstraint>,
    td_constraints: Vec<PlacementConstraint>,
    daemon: bool,
    min_healthy: u32,
    max_percent: u32,
    tags: Vec<(String, String)>,
    az_rebalancing: Option<String>,
}

/// A REPLICA service reserving 256 CPU units and 512 MiB per task, spread by the ECS default (no strategy).
pub fn service(name: &str) -> ServiceBuilder {
    ServiceBuilder {
        name: name.to_owned(),
        cpu: 256,
        memory: 512,
        memory_hard: None,
        gpus: 0,
        network_mode: None,
        ports: Vec::new(),
        strategy: Vec::new(),
        constraints: Vec::new(),
        td_constraints: Vec::new(),
        daemon: false,
        min_healthy: 100,
        max_percent: 200,
        tags: Vec::new(),
        az_rebalancing: None,
    }
}

impl ServiceBuilder {
    pub fn cpu(mut self, units: u32) -> Self {
        self.cpu = units;
        self
    }
    /// The container's `memoryReservation`.
    pub fn memory(mut self, mib: u32) -> Self {
        self.memory = mib;
        self
    }
    /// The container's hard `memory` limit (the reservation stays `memoryReservation`).
    pub fn memory_hard_limit(mut self, mib: u32) -> Self {
        self.memory_hard = Some(mib);
        self
    }
    pub fn gpus(mut self, n: u32) -> Self {
        self.gpus = n;
        self
    }
    pub fn network_mode(mut self, m: NetworkMode) -> Self {
        self.network_mode = Some(m);
        self
    }
    /// A port mapping: `host_port` `None` means dynamic in bridge mode (the container port in host mode).
    pub fn port(mut self, host_port: Option<u16>, container_port: u16, protocol: Protocol) -> Self {
        self.ports.push((host_port, container_port, protocol));
        self
    }
    pub fn binpack(mut self, field: &str) -> Self {
        self.strategy.push(PlacementStrategy {
            kind: PlacementStrategyType::Binpack,
            field: Some(field.to_owned()),
        });
        self
    }
    pub fn spread(mut self, field: &str) -> Self {
        self.strategy.push(PlacementStrategy {
            kind: PlacementStrategyType::Spread,
            field: Some(field.to_owned()),
        });
        self
    }
    pub fn random(mut self) -> Self {
        self.strategy.push(PlacementStrategy {
            kind: PlacementStrategyType::Random,
            field: None,
        });
        self
    }
    pub fn distinct_instance(mut self) -> Self {
        self.constraints.push(PlacementConstraint {
            kind: PlacementConstraintType::DistinctInstance,
            expression: None,
        });
        self
    }
    pub fn member_of(mut self, expression: &str) -> Self {
        self.constraints.push(PlacementConstraint {
            kind: PlacementConstraintType::MemberOf,
            expression: Some(expression.to_owned()),
        });
        self
    }
    /// A memberOf constraint in the task definition rather than the service.
    pub fn task_definition_member_of(mut self, expression: &str) -> Self {
        self.td_constraints.push(PlacementConstraint {
            kind: PlacementConstraintType::MemberOf,
            expression: Some(expression.to_owned()),
        });
        self
    }
    pub fn daemon(mut self) -> Self {
        self.daemon = true;
        self.min_healthy = 0;
        self.max_percent = 100;
        self
    }
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.to_owned(), value.to_owned()));
        self
    }
    /// `availabilityZoneRebalancing: ENABLED`.
    pub fn az_rebalancing(mut self) -> Self {
        self.az_rebalancing = Some("ENABLED".into());
        self
    }
    pub fn deployment(mut self, min_healthy: u32, max_percent: u32) -> Self {
        self.min_healthy = min_healthy;
        self.max_percent = max_percent;
        self
    }

    fn task_definition_arn(&self) -> String {
        format!("{ACCOUNT}:task-definition/{}:1", self.name)
    }

    fn task_definition(&self) -> TaskDefinition {
        TaskDefinition {
            task_definition_arn: self.task_definition_arn(),
            family: Some(self.name.clone()),
            revision: Some(1),
            network_mode: self.network_mode.clone(),
            container_definitions: vec![ContainerDefinition {
                name: self.name.clone(),
                image: Some(format!("example/{}:1", self.name)),
                cpu: self.cpu,
                memory: self.memory_hard,
                memory_reservation: Some(self.memory),
                essential: Some(true),
                port_mappings: self
                    .ports
                    .iter()
                    .map(|(host, container, protocol)| PortMapping {
                        container_port: Some(*container),
                        host_port: *host,
                        protocol: Some(protocol.clone()),
                        container_port_range: None,
                    })
                    .collect(),
                resource_requirements: if self.gpus > 0 {
                    vec![crate::model::ecs::ResourceRequirement {
                        kind: "GPU".into(),
                        value: self.gpus.to_string(),
                    }]
                } else {
                    Vec::new()
                },
            }],
            placement_constraints: self.td_constraints.clone(),
            requires_compatibilities: vec!["EC2".into()],
            cpu: None,
            memory: None,
            status: Some("ACTIVE".into()),
        }
    }

    fn build(&self) -> Service {
        Service {
            service_arn: format!("{ACCOUNT}:service/test/{}", self.name),
            service_name: self.name.clone(),
            cluster_arn: None,
            status: "ACTIVE".into(),
            desired_count: 0,
            running_count: 0,
            pending_count: 0,
            launch_type: Some("EC2".into()),
            capacity_provider_strategy: Vec::new(),
            task_definition: Some(self.task_definition_arn()),
            scheduling_strategy: if self.daemon {
                SchedulingStrategy::Daemon
            } else {
                SchedulingStrategy::Replica
            },
            deployment_configuration: Some(DeploymentConfiguration {
                minimum_healthy_percent: Some(self.min_healthy),
                maximum_percent: Some(self.max_percent),
                deployment_circuit_breaker: None,
            }),
            deployment_controller: None,
            placement_constraints: self.constraints.clone(),
            placement_strategy: self.strategy.clone(),
            deployments: vec![Deployment {
                id: format!("ecs-svc/{}", self.name),
                status: DeploymentStatus::Primary,
                task_definition: Some(self.task_definition_arn()),
                desired_count: 0,
                running_count: 0,
                pending_count: 0,
                failed_tasks: 0,
                rollout_state: Some(RolloutState::Completed),
                rollout_state_reason: None,
                launch_type: Some("EC2".into()),
                created_at: None,
                updated_at: None,
            }],
            created_at: None,
            tags: self
                .tags
                .iter()
                .map(|(key, value)| crate::model::Tag {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            availability_zone_rebalancing: self.az_rebalancing.clone(),
        }
    }
}

/// A cluster under construction.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    snapshot: Snapshot,
    services: Vec<ServiceBuilder>,
    /// Instance id → position, service name → position: builders of 100,000 tasks must not scan.
    instance_at: HashMap<String, usize>,
    service_at: HashMap<String, usize>,
}

impl ClusterBuilder {
    pub fn new(name: &str) -> Self {
        ClusterBuilder {
            snapshot: Snapshot {
                cluster: name.to_owned(),
                cluster_arn: Some(format!("{ACCOUNT}:cluster/{name}")),
                captured_at: None,
                container_instances: Vec::new(),
                tasks: Vec::new(),
                services: Vec::new(),
                task_definitions: Vec::new(),
                utilization: Default::default(),
                protected_tasks: Vec::new(),
            },
            services: Vec::new(),
            instance_at: HashMap::new(),
            service_at: HashMap::new(),
        }
    }

    pub fn instance(mut self, i: InstanceBuilder) -> Self {
        self.instance_at
            .insert(i.id.clone(), self.snapshot.container_instances.len());
        self.snapshot.container_instances.push(i.build());
        self
    }

    pub fn service(mut self, s: ServiceBuilder) -> Self {
        self.service_at.insert(s.name.clone(), self.services.len());
        self.snapshot.task_definitions.push(s.task_definition());
        self.snapshot.services.push(s.build());
        self.services.push(s);
        self
    }

    /// Places `n` RUNNING tasks of `service` on the instance named `instance`, keeping ECS's bookkeeping.
    ///
    /// # Panics
    /// When the service or the instance was not added first (a mistake in the code building the cluster).
    pub fn tasks(mut self, service: &str, instance: &str, n: usize) -> Self {
        for _ in 0..n {
            self = self.task_with(service, instance, TaskStatus::Running);
        }
        self
    }

    /// Places one task of `service` whose desired status is STOPPED while it is still RUNNING (being stopped).
    pub fn stopping_task(self, service: &str, instance: &str) -> Self {
        self.task_with(service, instance, TaskStatus::Stopped)
    }

    /// Places one standalone task (group `family:<family>`) reserving `cpu` and `memory`.
    pub fn standalone_task(mut self, family: &str, instance: &str, cpu: u32, memory: u32) -> Self {
        let n = self.snapshot.tasks.len();
        let at = self.instance_position(instance);
        let instance_arn = self.snapshot.container_instances[at].container_instance_arn.clone();
        self.snapshot.tasks.push(Task {
            task_arn: format!("{ACCOUNT}:task/test/{n:08}"),
            cluster_arn: None,
            container_instance_arn: Some(instance_arn),
            task_definition_arn: format!("{ACCOUNT}:task-definition/{family}:1"),
            group: Some(format!("family:{family}")),
            started_by: None,
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            launch_type: Some("EC2".into()),
            capacity_provider_name: None,
            availability_zone: None,
            cpu: Some(cpu.to_string()),
            memory: Some(memory.to_string()),
            created_at: None,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            stopped_reason: None,
            stop_code: None,
            version: None,
            containers: Vec::new(),
            tags: Vec::new(),
        });
        self.reserve(at, cpu, memory, &[], &[]);
        // Its definition too, so that a snapshot built here can be served and observed whole (`twin serve`).
        let definition = service(family).cpu(cpu).memory(memory).task_definition();
        if !self
            .snapshot
            .task_definitions
            .iter()
            .any(|d| d.task_definition_arn == definition.task_definition_arn)
        {
            self.snapshot.task_definitions.push(definition);
        }
        self
    }

    fn instance_position(&self, id: &str) -> usize {
        *self
            .instance_at
            .get(id)
            .unwrap_or_else(|| panic!("the cluster being built has no instance {id:?}"))
    }

    fn task_with(mut self, service: &str, instance: &str, desired: TaskStatus) -> Self {
        let si = *self
            .service_at
            .get(service)
            .unwrap_or_else(|| panic!("the cluster being built has no service {service:?}"));
        let s = self.services[si].clone();
        let at = self.instance_position(instance);
        let instance_arn = self.snapshot.container_instances[at].container_instance_arn.clone();
        let host_mode = s.network_mode == Some(NetworkMode::Host);
        let bindings: Vec<NetworkBinding> = s
            .ports
            .iter()
            .filter_map(|(host, container, protocol)| {
                let host_port = match (host, host_mode) {
                    (Some(p), _) if *p != 0 => *p,
                    (_, true) => *container,
                    _ => return None, // dynamic: an ephemeral port, not reserved as static
                };
                Some(NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    container_port: Some(*container),
                    host_port: Some(host_port),
                    protocol: Some(protocol.clone()),
                    container_port_range: None,
                    host_port_range: None,
                })
            })
            .collect();
        let port_list = |p: Protocol| -> Vec<u16> {
            bindings
                .iter()
                .filter(|b| b.protocol.as_ref() == Some(&p))
                .filter_map(|b| b.host_port)
                .collect()
        };
        let (tcp, udp) = (port_list(Protocol::Tcp), port_list(Protocol::Udp));
        let n = self.snapshot.tasks.len();
        self.snapshot.tasks.push(Task {
            task_arn: format!("{ACCOUNT}:task/test/{n:08}"),
            cluster_arn: None,
            container_instance_arn: Some(instance_arn),
            task_definition_arn: s.task_definition_arn(),
            group: Some(format!("service:{service}")),
            started_by: Some(format!("ecs-svc/{service}")),
            last_status: TaskStatus::Running,
            desired_status: desired.clone(),
            launch_type: Some("EC2".into()),
            capacity_provider_name: None,
            availability_zone: None,
            cpu: Some(s.cpu.to_string()),
            memory: s.memory_hard.map(|m| m.to_string()),
            created_at: None,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            stopped_reason: None,
            stop_code: None,
            version: None,
            containers: vec![Container {
                name: service.to_owned(),
                container_arn: None,
                last_status: Some("RUNNING".into()),
                cpu: Some(s.cpu.to_string()),
                memory: s.memory_hard.map(|m| m.to_string()),
                memory_reservation: Some(s.memory.to_string()),
                network_bindings: bindings,
                gpu_ids: Vec::new(),
            }],
            tags: Vec::new(),
        });
        if desired == TaskStatus::Running {
            let svc = &mut self.snapshot.services[si];
            svc.desired_count += 1;
            svc.running_count += 1;
            svc.deployments[0].desired_count += 1;
            svc.deployments[0].running_count += 1;
        }
        self.reserve(at, s.cpu, s.memory, &tcp, &udp);
        self
    }

    /// ECS's bookkeeping for a started task: less CPU and memory remaining, its host ports in use, one more task.
    fn reserve(&mut self, at: usize, cpu: u32, memory: u32, tcp: &[u16], udp: &[u16]) {
        let i = &mut self.snapshot.container_instances[at];
        for r in &mut i.remaining_resources {
            match r.name.as_str() {
                resource::CPU => r.integer_value = r.integer_value.map(|v| v - i64::from(cpu)),
                resource::MEMORY => r.integer_value = r.integer_value.map(|v| v - i64::from(memory)),
                resource::PORTS => extend_ports(r, tcp),
                resource::PORTS_UDP => extend_ports(r, udp),
                _ => {}
            }
        }
        i.running_tasks_count += 1;
    }

    /// The snapshot as built.
    pub fn snapshot(self) -> Snapshot {
        self.snapshot
    }

    /// The indexed cluster.
    ///
    /// # Panics
    /// On duplicate names, a mistake in the code building the cluster.
    pub fn build(self) -> Cluster {
        Cluster::new(self.snapshot).expect("a built cluster has unique names")
    }
}

fn extend_ports(r: &mut Resource, ports: &[u16]) {
    let set = r.string_set_value.get_or_insert_with(Vec::new);
    set.extend(ports.iter().map(u16::to_string));
}

//! Resource fit: what a task reserves on an instance, and whether it fits what the instance has left.
//!
//! docs/ecs.md: Container instances, Placement: a task fits when its CPU, memory, GPUs and static host ports are available in the instance's
//! `remainingResources`, ECS's own bookkeeping of reservations (not actual use).
//!
//! Not modelled, and failing safe:
//! - `awsvpc` tasks: each needs an ENI (or a trunk branch), and ENI limits per instance type are not in the API's
//!   instance description. [`Footprint::for_definition`] refuses them with [`Unpredictable`], so nothing is planned
//!   on a prediction that could be wrong.
//! - `ECS_MAX_TASKS_PER_CONTAINER_INSTANCE` lives in the agent's config file and is invisible to the API. An
//!   instance at that cap rejects the placement and ECS chooses another candidate; the reconcile loop compares the
//!   landing with the prediction afterwards and counts the miss.
//! - Custom resources other than CPU, MEMORY, PORTS, PORTS_UDP and GPU are ignored.

use std::fmt;

use crate::model::ecs::resource;
use crate::model::{ContainerInstance, NetworkMode, Protocol, Task, TaskDefinition};

/// Why a placement cannot be predicted at all. The planner treats it as "do not move".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unpredictable(pub String);

/// What a task reserves on the instance it runs on: the amounts ECS subtracts from `remainingResources`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Footprint {
    /// CPU units (1,024 per vCPU).
    pub cpu: u32,
    /// MiB.
    pub memory: u32,
    pub gpus: u32,
    /// Static TCP host ports, sorted, no duplicates.
    pub tcp_ports: Vec<u16>,
    /// Static UDP host ports, sorted, no duplicates.
    pub udp_ports: Vec<u16>,
}

impl Footprint {
    /// What a new task of this definition will reserve.
    ///
    /// CPU and memory: task-level values when set, else the containers' sum with `memoryReservation` preferred over
    /// `memory` (docs/ecs.md: Container instances). Ports: in `host` mode every mapped port is a host port (`hostPort`, or
    /// `containerPort` when absent, and every port of a `containerPortRange`); in `bridge` mode only a non-zero
    /// `hostPort` is static (0, absent, and ranges get dynamic ports, which never conflict). GPUs: the sum of the
    /// containers' `GPU` resource requirements.
    pub fn for_definition(td: &TaskDefinition) -> Result<Footprint, Unpredictable> {
        let mode = td.network_mode();
        let mut fp = Footprint {
            cpu: td.cpu_units(),
            memory: td.memory_mib(),
            ..Footprint::default()
        };
        match mode {
            NetworkMode::Bridge | NetworkMode::Host | NetworkMode::None => {}
            NetworkMode::Awsvpc => {
                return Err(Unpredictable(format!(
                    "{} uses awsvpc networking; ENI and trunking limits are not modelled",
                    td.task_definition_arn
                )))
            }
            NetworkMode::Other(m) => {
                return Err(Unpredictable(format!(
                    "{} uses network mode {m:?}, which is not modelled",
                    td.task_definition_arn
                )))
            }
        }
        for c in &td.container_definitions {
            for r in &c.resource_requirements {
                if r.kind == "GPU" {
                    let n: u32 = r.value.trim().parse().map_err(|_| {
                        Unpredictable(format!(
                            "{}: GPU requirement {:?} is not a count",
                            td.task_definition_arn, r.value
                        ))
                    })?;
                    fp.gpus += n;
                }
            }
            if mode == NetworkMode::None {
                continue;
            }
            for pm in &c.port_mappings {
                let ports = match (&mode, pm.host_port, pm.container_port, &pm.container_port_range) {
                    (NetworkMode::Host, _, _, Some(range)) => parse_range(range).ok_or_else(|| {
                        Unpredictable(format!("{}: port range {range:?} is malformed", td.task_definition_arn))
                    })?,
                    (NetworkMode::Host, Some(p), _, None) | (NetworkMode::Host, None, Some(p), None) => p..=p,
                    (NetworkMode::Bridge, Some(p), _, _) if p != 0 => p..=p,
                    _ => continue,
                };
                let list = match pm.protocol {
                    Some(Protocol::Udp) => &mut fp.udp_ports,
                    _ => &mut fp.tcp_ports,
                };
                list.extend(ports);
            }
        }
        normalize(&mut fp.tcp_ports);
        normalize(&mut fp.udp_ports);
        Ok(fp)
    }

    /// What a running task holds: its own reservation and the host ports it is bound to.
    pub fn of_task(task: &Task) -> Result<Footprint, Unpredictable> {
        let unknown = |what: &str| Unpredictable(format!("task {} does not say its {what} reservation", task.task_arn));
        let mut fp = Footprint {
            cpu: task.cpu_units().ok_or_else(|| unknown("CPU"))?,
            memory: task.memory_mib().ok_or_else(|| unknown("memory"))?,
            ..Footprint::default()
        };
        for c in &task.containers {
            fp.gpus += u32::try_from(c.gpu_ids.len()).unwrap_or(u32::MAX);
            for b in &c.network_bindings {
                if let Some(p) = b.host_port.filter(|p| *p != 0) {
                    match b.protocol {
                        Some(Protocol::Udp) => fp.udp_ports.push(p),
                        _ => fp.tcp_ports.push(p),
                    }
                }
            }
        }
        normalize(&mut fp.tcp_ports);
        normalize(&mut fp.udp_ports);
        Ok(fp)
    }
}

impl Footprint {
    /// ECS's bookkeeping in an instance's `remainingResources` for a task started on it (`take`) or stopped:
    /// CPU, memory, host ports, and the task's GPU ids.
    pub fn book(&self, instance: &mut ContainerInstance, gpus: &[String], take: bool) {
        let sign: i64 = if take { -1 } else { 1 };
        for r in &mut instance.remaining_resources {
            match r.name.as_str() {
                resource::CPU => r.integer_value = r.integer_value.map(|v| v + sign * i64::from(self.cpu)),
                resource::MEMORY => r.integer_value = r.integer_value.map(|v| v + sign * i64::from(self.memory)),
                resource::PORTS | resource::PORTS_UDP => {
                    let ports = if r.name == resource::PORTS {
                        &self.tcp_ports
                    } else {
                        &self.udp_ports
                    };
                    let set = r.string_set_value.get_or_insert_with(Vec::new);
                    if take {
                        set.extend(ports.iter().map(u16::to_string));
                    } else {
                        set.retain(|p| p.parse::<u16>().map_or(true, |p| !ports.contains(&p)));
                    }
                }
                resource::GPU => {
                    let set = r.string_set_value.get_or_insert_with(Vec::new);
                    if take {
                        set.retain(|g| !gpus.contains(g));
                    } else {
                        set.extend(gpus.iter().cloned());
                    }
                }
                _ => {}
            }
        }
    }
}

fn normalize(ports: &mut Vec<u16>) {
    ports.sort_unstable();
    ports.dedup();
}

fn parse_range(range: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (a, b) = range.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some(a..=b)
}

/// An instance's free capacity, from `remainingResources`, adjustable by an overlay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capacity {
    pub cpu: i64,
    pub memory: i64,
    pub gpus: i64,
    /// TCP host ports in use or reserved, sorted.
    pub tcp_in_use: Vec<u16>,
    /// UDP host ports in use or reserved, sorted.
    pub udp_in_use: Vec<u16>,
}

impl Capacity {
    /// Reads `remainingResources`. `None` when CPU or MEMORY is missing: such an instance is not offered.
    pub fn remaining(instance: &ContainerInstance) -> Option<Capacity> {
        #[allow(clippy::cast_possible_truncation)] // resource amounts are integers far below i64::MAX
        let number = |name| instance.remaining(name).and_then(|r| r.number()).map(|v| v as i64);
        let ports = |protocol| instance.ports_in_use(&protocol).into_iter().collect();
        Some(Capacity {
            cpu: number(resource::CPU)?,
            memory: number(resource::MEMORY)?,
            gpus: instance
                .remaining(resource::GPU)
                .and_then(|r| r.string_set_value.as_ref())
                .map_or(0, |ids| i64::try_from(ids.len()).unwrap_or(i64::MAX)),
            tcp_in_use: ports(Protocol::Tcp),
            udp_in_use: ports(Protocol::Udp),
        })
    }

    /// Gives back what a stopped task held.
    pub fn release(&mut self, fp: &Footprint) {
        self.cpu += i64::from(fp.cpu);
        self.memory += i64::from(fp.memory);
        self.gpus += i64::from(fp.gpus);
        self.tcp_in_use.retain(|p| fp.tcp_ports.binary_search(p).is_err());
        self.udp_in_use.retain(|p| fp.udp_ports.binary_search(p).is_err());
    }

    /// Takes what a started task reserves.
    pub fn reserve(&mut self, fp: &Footprint) {
        self.cpu -= i64::from(fp.cpu);
        self.memory -= i64::from(fp.memory);
        self.gpus -= i64::from(fp.gpus);
        self.tcp_in_use.extend(&fp.tcp_ports);
        self.udp_in_use.extend(&fp.udp_ports);
        normalize(&mut self.tcp_in_use);
        normalize(&mut self.udp_in_use);
    }

    /// The first reason the footprint does not fit, checked in ECS's order: CPU, memory, GPU, then ports.
    pub fn misfit(&self, fp: &Footprint) -> Option<Misfit> {
        if self.cpu < i64::from(fp.cpu) {
            return Some(Misfit::Cpu {
                need: fp.cpu,
                free: self.cpu,
            });
        }
        if self.memory < i64::from(fp.memory) {
            return Some(Misfit::Memory {
                need: fp.memory,
                free: self.memory,
            });
        }
        if self.gpus < i64::from(fp.gpus) {
            return Some(Misfit::Gpu {
                need: fp.gpus,
                free: self.gpus,
            });
        }
        let taken = |wanted: &[u16], used: &[u16]| wanted.iter().copied().find(|p| used.binary_search(p).is_ok());
        if let Some(port) = taken(&fp.tcp_ports, &self.tcp_in_use) {
            return Some(Misfit::Port {
                port,
                protocol: Protocol::Tcp,
            });
        }
        if let Some(port) = taken(&fp.udp_ports, &self.udp_in_use) {
            return Some(Misfit::Port {
                port,
                protocol: Protocol::Udp,
            });
        }
        None
    }
}

/// Why a footprint does not fit an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    Cpu { need: u32, free: i64 },
    Memory { need: u32, free: i64 },
    Gpu { need: u32, free: i64 },
    Port { port: u16, protocol: Protocol },
}

impl fmt::Display for Misfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misfit::Cpu { need, free } => write!(f, "not enough CPU: needs {need} units, {free} free"),
            Misfit::Memory { need, free } => write!(f, "not enough memory: needs {need} MiB, {free} free"),
            Misfit::Gpu { need, free } => write!(f, "not enough GPUs: needs {need}, {free} free"),
            Misfit::Port { port, protocol } => write!(f, "host port {port}/{protocol} is taken"),
        }
    }
}

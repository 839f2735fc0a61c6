//! `inspect`: a cluster as a person reads it. One row per container instance (what it runs, how much of it is
//! reserved, how much is used), then the inconsistencies that would keep the planner away from a service.
//!
//! This is a view over [`Cluster`], not the planner's load model: shares here are raw reservations as ECS keeps
//! them, without the normalisation the planner applies to instances of different sizes.

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::ecs::resource;
use crate::model::{Cluster, ContainerInstance};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    pub cluster: String,
    pub instances: Vec<InstanceRow>,
    pub services: usize,
    pub tasks: usize,
    pub inconsistencies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRow {
    pub container_instance_arn: String,
    pub ec2_instance_id: Option<String>,
    pub availability_zone: Option<String>,
    pub instance_type: Option<String>,
    pub status: String,
    pub agent_connected: bool,
    /// Live tasks on the instance, service and standalone.
    pub tasks: usize,
    /// Live tasks that belong to a service.
    pub service_tasks: usize,
    /// Reserved CPU / registered CPU, 0..1; `None` when the instance registers no CPU.
    pub cpu_reserved: Option<f64>,
    /// Reserved memory / registered memory, 0..1.
    pub memory_reserved: Option<f64>,
    /// Observed CPU use, 0..1; `None` is unknown.
    pub cpu_used: Option<f64>,
    /// Observed memory use, 0..1; `None` is unknown.
    pub memory_used: Option<f64>,
}

/// Reserved share of one resource: (registered − remaining) / registered.
fn reserved_share(instance: &ContainerInstance, name: &str) -> Option<f64> {
    let registered = instance.registered(name)?.number()?;
    let remaining = instance.remaining(name)?.number()?;
    (registered > 0.0).then(|| ((registered - remaining) / registered).clamp(0.0, 1.0))
}

impl ClusterReport {
    pub fn new(cluster: &Cluster) -> ClusterReport {
        let instances = cluster
            .instances()
            .iter()
            .map(|i| {
                let arn = &i.container_instance_arn;
                let used = cluster.utilization(arn);
                InstanceRow {
                    container_instance_arn: arn.clone(),
                    ec2_instance_id: i.ec2_instance_id.clone(),
                    availability_zone: i.availability_zone().map(str::to_owned),
                    instance_type: i.attribute("ecs.instance-type").map(str::to_owned),
                    status: i.status.to_string(),
                    agent_connected: i.agent_connected,
                    tasks: cluster.tasks_on(arn).count(),
                    service_tasks: cluster.tasks_on(arn).filter(|t| t.service_name().is_some()).count(),
                    cpu_reserved: reserved_share(i, resource::CPU),
                    memory_reserved: reserved_share(i, resource::MEMORY),
                    cpu_used: used.and_then(|u| u.cpu),
                    memory_used: used.and_then(|u| u.memory),
                }
            })
            .collect();
        ClusterReport {
            cluster: cluster.name().to_owned(),
            instances,
            services: cluster.services().len(),
            tasks: cluster
                .instances()
                .iter()
                .map(|i| cluster.tasks_on(&i.container_instance_arn).count())
                .sum(),
            inconsistencies: cluster.inconsistencies().iter().map(ToString::to_string).collect(),
        }
    }

    /// A fixed-width table for terminals.
    pub fn to_table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cluster {}: {} instances, {} services, {} live tasks on instances",
            self.cluster,
            self.instances.len(),
            self.services,
            self.tasks
        );
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<11} {:<9} {:>5} {:>8} {:>6} {:>6} {:>6} {:>6}",
            "INSTANCE", "AZ", "TYPE", "STATUS", "TASKS", "SERVICE", "CPU%", "MEM%", "CPU↑", "MEM↑"
        );
        for r in &self.instances {
            let status = if r.agent_connected {
                r.status.clone()
            } else {
                format!("{}*", r.status)
            };
            let _ = writeln!(
                out,
                "{:<20} {:<12} {:<11} {:<9} {:>5} {:>8} {:>6} {:>6} {:>6} {:>6}",
                r.ec2_instance_id
                    .as_deref()
                    .unwrap_or_else(|| short_arn(&r.container_instance_arn)),
                r.availability_zone.as_deref().unwrap_or("-"),
                r.instance_type.as_deref().unwrap_or("-"),
                status,
                r.tasks,
                r.service_tasks,
                pct(r.cpu_reserved),
                pct(r.memory_reserved),
                pct(r.cpu_used),
                pct(r.memory_used),
            );
        }
        let _ = writeln!(
            out,
            "CPU%/MEM%: reserved share (ECS remainingResources); CPU↑/MEM↑: observed use; * agent disconnected"
        );
        if !self.inconsistencies.is_empty() {
            let _ = writeln!(
                out,
                "\n{} inconsistencies (the services involved will not be moved):",
                self.inconsistencies.len()
            );
            for i in &self.inconsistencies {
                let _ = writeln!(out, "  - {i}");
            }
        }
        out
    }
}

/// The last path segment of an ARN (`…/container-instance/prod/abc` → `abc`).
fn short_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

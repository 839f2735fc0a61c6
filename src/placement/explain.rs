//! The `placement` command's answer: where a new task of a service could and would go, with reasons.

use serde::Serialize;

use super::{Overlay, PlacementIndex};
use crate::model::{Cluster, ContainerInstance, InstanceIdx, Service};

/// The `placement` command's view of one service: the same answer as [`Placement`], with ARNs and reasons as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlacement {
    pub service: String,
    /// Set when the placement cannot be predicted (awsvpc, a missing task definition, a Java-only regex, …);
    /// the lists are then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpredictable: Option<String>,
    pub feasible: Vec<String>,
    pub candidates: Vec<String>,
    pub rejected: Vec<RejectedInstance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedInstance {
    pub container_instance_arn: String,
    pub reason: String,
}

impl ServicePlacement {
    /// Where a new task of the service could and would go in the cluster as it is.
    pub fn new(index: &PlacementIndex<'_>, service: &Service) -> ServicePlacement {
        let request = match index.request_for_service(service) {
            Ok(r) => r,
            Err(e) => {
                return ServicePlacement {
                    service: service.service_name.clone(),
                    unpredictable: Some(e.0),
                    feasible: Vec::new(),
                    candidates: Vec::new(),
                    rejected: Vec::new(),
                }
            }
        };
        let placement = index.place(&request, &Overlay::new());
        let arn = |i: InstanceIdx| index.cluster.instance_at(i).container_instance_arn.clone();
        ServicePlacement {
            service: service.service_name.clone(),
            unpredictable: None,
            feasible: placement.feasible.iter().map(|&i| arn(i)).collect(),
            candidates: placement.candidates.iter().map(|&i| arn(i)).collect(),
            rejected: placement
                .rejected
                .iter()
                .map(|(i, r)| RejectedInstance {
                    container_instance_arn: arn(*i),
                    reason: r.to_string(),
                })
                .collect(),
        }
    }

    /// A table for terminals: one row per instance, candidates first.
    pub fn to_table(&self, cluster: &Cluster) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if let Some(reason) = &self.unpredictable {
            let _ = writeln!(out, "cannot predict where a new task goes: {reason}");
            return out;
        }
        let _ = writeln!(
            out,
            "service {}: a new task fits on {} of {} instances; ECS would choose among {}",
            self.service,
            self.feasible.len(),
            cluster.instances().len(),
            self.candidates.len()
        );
        let _ = writeln!(out, "{:<20} {:<12} {:<11} VERDICT", "INSTANCE", "AZ", "TYPE");
        let row = |out: &mut String, arn: &str, verdict: &str| {
            let i = cluster.instance(arn);
            let _ = writeln!(
                out,
                "{:<20} {:<12} {:<11} {verdict}",
                i.and_then(|i| i.ec2_instance_id.as_deref()).unwrap_or(arn),
                i.and_then(ContainerInstance::availability_zone).unwrap_or("-"),
                i.and_then(|i| i.attribute("ecs.instance-type")).unwrap_or("-"),
            );
        };
        for arn in &self.candidates {
            row(&mut out, arn, "candidate");
        }
        for arn in self.feasible.iter().filter(|a| !self.candidates.contains(a)) {
            row(&mut out, arn, "fits, but the strategy prefers another");
        }
        for r in &self.rejected {
            row(&mut out, &r.container_instance_arn, &r.reason);
        }
        out
    }
}

//! The three moves the controller makes, as one type used end to end: the planner proposes a [`Move`]
//! ([`crate::plan::PlannedAction`]), the ledger records it ([`crate::ledger::ActionRecord`]), the controller carries
//! it out and settles it, and metrics count it by [`MoveKind`]. Every `match` over a move is exhaustive, so a new
//! kind cannot fall into another kind's branch.
//!
//! The kind names (`stop-task`, `redeploy-service`, `drain-instance`) are user-facing: the `plan` JSON, the
//! ledger's `kind` attribute, action ids, logs and metric labels. They are written once, in [`MoveKind::as_str`].

use std::fmt;

use serde::{Serialize, Serializer};

/// What a move is, without what it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MoveKind {
    StopTask,
    RedeployService,
    DrainInstance,
}

impl MoveKind {
    pub const ALL: [MoveKind; 3] = [MoveKind::StopTask, MoveKind::RedeployService, MoveKind::DrainInstance];

    /// The kind's name wherever a person or another program reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::StopTask => "stop-task",
            MoveKind::RedeployService => "redeploy-service",
            MoveKind::DrainInstance => "drain-instance",
        }
    }

    /// The kind named `s`, if this version knows it.
    pub fn parse(s: &str) -> Option<MoveKind> {
        MoveKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for MoveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MoveKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One move and what it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Stop one task of a service; the service scheduler starts its replacement.
    StopTask {
        task_arn: String,
        service_name: String,
        /// The instance the task leaves.
        container_instance_arn: String,
        /// The instances ECS could start the replacement on where the move pays off (its odds, read as a fair
        /// draw among the predicted landing).
        improving_landing: Vec<String>,
    },
    /// Force a new deployment of a service: it starts each replacement before it stops an old task.
    RedeployService { service_name: String },
    /// Set an instance DRAINING until the tasks ECS moves off it are gone, then ACTIVE again.
    DrainInstance {
        container_instance_arn: String,
        /// The tasks the drain expects ECS to move (empty on records written before drains named them).
        moved_tasks: Vec<String>,
    },
}

impl Move {
    pub fn kind(&self) -> MoveKind {
        match self {
            Move::StopTask { .. } => MoveKind::StopTask,
            Move::RedeployService { .. } => MoveKind::RedeployService,
            Move::DrainInstance { .. } => MoveKind::DrainInstance,
        }
    }

    /// What the move acts on: the task ARN, the service name or the container instance ARN.
    pub fn target(&self) -> &str {
        match self {
            Move::StopTask { task_arn, .. } => task_arn,
            Move::RedeployService { service_name } => service_name,
            Move::DrainInstance {
                container_instance_arn, ..
            } => container_instance_arn,
        }
    }

    /// The task a stop stops.
    pub fn task_arn(&self) -> Option<&str> {
        match self {
            Move::StopTask { task_arn, .. } => Some(task_arn),
            Move::RedeployService { .. } | Move::DrainInstance { .. } => None,
        }
    }

    /// The service whose tasks a stop or a redeploy replaces.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Move::StopTask { service_name, .. } | Move::RedeployService { service_name } => Some(service_name),
            Move::DrainInstance { .. } => None,
        }
    }

    /// The instance a stopped task leaves, or the instance drained.
    pub fn container_instance_arn(&self) -> Option<&str> {
        match self {
            Move::StopTask {
                container_instance_arn, ..
            }
            | Move::DrainInstance {
                container_instance_arn, ..
            } => Some(container_instance_arn),
            Move::RedeployService { .. } => None,
        }
    }

    /// For a stop: where its replacement lands and the move pays off. Empty for the other kinds.
    pub fn improving_landing(&self) -> &[String] {
        match self {
            Move::StopTask { improving_landing, .. } => improving_landing,
            Move::RedeployService { .. } | Move::DrainInstance { .. } => &[],
        }
    }

    /// For a drain: the tasks it expects ECS to move. Empty for the other kinds.
    pub fn moved_tasks(&self) -> &[String] {
        match self {
            Move::DrainInstance { moved_tasks, .. } => moved_tasks,
            Move::StopTask { .. } | Move::RedeployService { .. } => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name_and_nothing_else_does() {
        for k in MoveKind::ALL {
            assert_eq!(MoveKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for unknown in ["", "stop-tasks", "Stop-Task", "drain", "stop-task "] {
            assert_eq!(MoveKind::parse(unknown), None, "{unknown:?}");
        }
    }
}

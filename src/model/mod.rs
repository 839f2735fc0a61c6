//! The cluster model: plain owned data shaped like ECS's own JSON.
//!
//! - [`ecs`]: container instances, tasks, services, task definitions, field for field as ECS prints them.
//! - [`enums`]: ECS's string enumerations, each with an `Other` variant for values newer than this build.
//! - [`snapshot`]: the snapshot file (load, save, errors that name the item and field).
//! - [`cluster`]: a snapshot with its indexes built once, and the inconsistencies found while building them.
//!
//! No SDK type crosses into this module; the adapters convert at the edge.

pub mod cluster;
pub mod ecs;
pub mod enums;
mod numeric;
pub mod snapshot;
mod timestamp;

pub use cluster::{Cluster, DuplicateKey, Inconsistency, InstanceIdx, TaskIdx};
pub use ecs::{
    Attribute, Container, ContainerDefinition, ContainerInstance, Deployment, DeploymentConfiguration, NetworkBinding,
    PlacementConstraint, PlacementStrategy, PortMapping, Resource, Service, Tag, Task, TaskDefinition, VersionInfo,
};
pub use enums::{
    DeploymentStatus, InstanceStatus, NetworkMode, PlacementConstraintType, PlacementStrategyType, Protocol,
    RolloutState, SchedulingStrategy, TaskStatus,
};
pub use snapshot::{ItemError, ProtectedTask, Snapshot, SnapshotError, Utilization};
pub use timestamp::from_epoch;

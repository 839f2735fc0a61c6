//! ecs-rebalancer: a reconciliation controller that keeps AWS ECS clusters (EC2 launch type) balanced.
//!
//! Data flows one way (see `docs/design.md`):
//!
//! ```text
//! policies/*.yaml ─► policy ─────────────┐
//!                                        ▼
//! snapshot / ECS API ─► model::Cluster ─► plan (pure) ─► actions ─► ledger ─► ECS
//! ```
//!
//! Module map:
//! - [`model`]: ECS-shaped types, the snapshot file, indexes over a cluster.
//! - [`policy`]: the `ecs-rebalancer/v1` policy language: raw YAML → validated (every error with `file:line:col`)
//!   → defaulted [`policy::Policy`].
//! - [`placement`]: where ECS can and will put a new task (resources, constraints, strategies), pure.
//! - [`moves`]: the three moves (stop a task, redeploy a service, drain an instance) as one enum, from plan to
//!   ledger to ECS to metrics.
//! - [`plan`]: the planner: load, score, safety rules, and the fewest safe moves, pure.
//! - [`ecs`]: the `EcsApi` trait the controller observes and acts through.
//! - [`twin`]: a deterministic simulation of an ECS cluster behind `EcsApi`.
//! - [`ledger`]: the durable record of moves and cooldowns (`Ledger` trait; in-memory and DynamoDB implementations).
//! - [`reconcile`]: one controller cycle: observe → settle → plan → re-check → claim → act.
//! - [`simulate`]: the controller against the twin (`simulate`, `demo`), with an end-state audit.
//! - [`scenarios`]: the built-in clusters (the demo, the baselines' scenarios, generated clusters for benchmarks) and
//!   [`scenarios::builder`], the cluster builder they, the tests and the benchmarks are written with.
//! - [`report`]: the `inspect` view of a cluster (per-instance load as a person reads it).
//!
//! Errors: each module fails with its own type (`model::SnapshotError`, `policy::Diagnostics`, `ecs::EcsError`,
//! `ledger::LedgerError`, `reconcile::CycleError`); those a running controller meets carry a stable `label()` for
//! logs and metrics. `anyhow` appears only in the binary.

pub mod aws;
pub mod ecs;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod moves;
pub mod placement;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod simulate;
pub mod source;
pub mod status;
pub mod twin;
pub mod utilization;

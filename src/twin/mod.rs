//! The twin: a deterministic simulation of an ECS cluster (EC2 launch type), behind the same [`EcsApi`] the controller
//! uses against AWS. It follows docs/ecs.md rule by rule (see [`scheduler`]), places every task with the
//! placement engine, breaks ties with a seeded RNG, and takes its time from its own clock, advanced by the caller.
//!
//! What it models: the task lifecycle (PENDING → RUNNING → STOPPED with delays), the service scheduler (replacement
//! after StopTask, rolling `forceNewDeployment` within minimum/maximum percent, draining, daemons, PENDING when
//! nothing fits, retried every tick), and the bookkeeping ECS keeps (`remainingResources`, running and pending
//! counts, deployments), and task scale-in protection as ECS documents it (deployments and scale-in leave protected
//! tasks alone until protection lapses; draining and StopTask do not look at it; see [`scheduler`]). What it does
//! not: load balancers and health checks (a task is healthy once RUNNING),
//! capacity providers and scaling, task failures, throttling (see `docs/simulate.md`).
//!
//! [`server`] puts it behind ECS's JSON 1.1 protocol (`twin serve`, `docs/twin.md`).

pub mod cloudwatch;
pub mod scheduler;
pub mod server;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ecs::{EcsApi, EcsError, InstanceState};
use crate::model::{
    Cluster, DeploymentStatus, DuplicateKey, InstanceStatus, ProtectedTask, RolloutState, Snapshot, TaskStatus,
};

/// Timing and randomness of a twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinConfig {
    /// Simulated time per scheduler pass.
    pub tick: Duration,
    /// PENDING → RUNNING.
    pub start_delay: Duration,
    /// Desired STOPPED → STOPPED (SIGTERM, then SIGKILL after the stop timeout).
    pub stop_delay: Duration,
    /// Seeds the tie-breaks among equally good instances.
    pub seed: u64,
    /// Skip scheduler passes that provably change nothing (idle time: nothing pending, nothing stopping, a pass that
    /// changed nothing), up to the next timed event; the result is the same as ticking through them. `false`: run
    /// every pass, the reference the skip is tested against.
    pub skip_idle: bool,
}

impl Default for TwinConfig {
    fn default() -> Self {
        TwinConfig {
            tick: Duration::from_secs(10),
            start_delay: Duration::from_secs(30),
            stop_delay: Duration::from_secs(30),
            seed: 1,
            skip_idle: true,
        }
    }
}

/// What the twin counted while it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinStats {
    pub tasks_started: u64,
    pub tasks_stopped: u64,
    /// Scheduler passes in which a task of a service could not be placed (it stays PENDING in ECS's terms).
    pub placement_failures: u64,
    /// Ticks in which a service disrupted by an API call had fewer healthy tasks than its floor
    /// (`ceil(minimumHealthyPercent × desired / 100)`). The controller must never cause one.
    pub floor_violations: u64,
    /// The services that had a floor violation.
    pub floor_violators: Vec<String>,
}

/// Everything that changes as the twin runs.
pub struct State {
    pub(crate) snap: Snapshot,
    pub(crate) now: DateTime<Utc>,
    pub(crate) rng: fastrand::Rng,
    pub(crate) config: TwinConfig,
    pub(crate) next_id: u64,
    /// Services an API call disrupted and that are not steady again yet (for floor accounting).
    pub(crate) disrupted: HashSet<String>,
    pub(crate) stats: TwinStats,
    /// Scheduler passes skipped as idle (`TwinConfig::skip_idle`): kept apart from `stats`, which must not depend on
    /// the skip.
    pub(crate) skipped_passes: u64,
    /// Counts the changes made to `snap`, by the scheduler and by API calls: a pass that leaves it, `stats`,
    /// `disrupted` and the RNG as they were changed nothing (see [`Twin::advance`]).
    pub(crate) revision: u64,
}

impl State {
    fn service_mut(&mut self, name: &str) -> Result<&mut crate::model::Service, EcsError> {
        self.snap
            .services
            .iter_mut()
            .find(|s| s.service_name == name)
            .ok_or_else(|| EcsError::NotFound(format!("service {name}").into()))
    }

    fn instance_mut(&mut self, arn: &str) -> Result<&mut crate::model::ContainerInstance, EcsError> {
        self.snap
            .container_instances
            .iter_mut()
            .find(|i| i.container_instance_arn == arn)
            .ok_or_else(|| EcsError::NotFound(format!("container instance {arn}").into()))
    }
}

/// Why `GetTaskProtection` or `UpdateTaskProtection` refused a task: the `reason` of its `failures[]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectionFailure {
    /// No such task.
    Missing,
    /// Not a task of a service (protection is only for service tasks), or already stopped.
    TaskNotValid,
    /// The service would have more protected tasks than its desired count.
    DeploymentBlocked,
}

impl ProtectionFailure {
    pub fn reason(self) -> &'static str {
        match self {
            ProtectionFailure::Missing => "MISSING",
            ProtectionFailure::TaskNotValid => "TASK_NOT_VALID",
            ProtectionFailure::DeploymentBlocked => "DEPLOYMENT_BLOCKED",
        }
    }
}

/// The task, if task protection applies to it: it exists and belongs to a service (its `group` is `service:…`).
fn protectable<'s>(state: &'s State, task_arn: &str) -> Result<&'s crate::model::Task, ProtectionFailure> {
    let task = state
        .snap
        .tasks
        .iter()
        .find(|t| t.task_arn == task_arn)
        .ok_or(ProtectionFailure::Missing)?;
    task.service_name().ok_or(ProtectionFailure::TaskNotValid)?;
    Ok(task)
}

/// A simulated ECS cluster. Interior mutability, so it can sit behind `&self` like an API client.
///
/// Reads are answered from a published view: an immutable copy of the cluster, made on first read and replaced
/// whenever a reader finds the state changed since (its [`State::revision`]), and by [`Twin::publish`] (`twin serve`
/// publishes after every pass of its clock and every write it answers). A read that arrives while a scheduler pass
/// holds the state gets the last view, whole and consistent, instead of waiting for the pass; an unchanged cluster
/// is never copied twice.
pub struct Twin {
    state: Mutex<State>,
    /// `None` until the first read.
    view: RwLock<Option<View>>,
}

/// The cluster as of one revision, with `capturedAt` the twin's clock when it was published.
struct View {
    revision: u64,
    snapshot: Arc<Snapshot>,
}

/// The default clock when a snapshot does not say when it was taken.
fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc))
}

/// The first number free for the ids the twin makes up (`…/twin<n>` task ARNs, `ecs-svc/twin<n>` deployments): one
/// past the highest in the snapshot, so a twin restarted from a snapshot another twin saved never hands out an ARN
/// or a deployment id that is already taken.
fn first_free_id(snapshot: &Snapshot) -> u64 {
    let tasks = snapshot
        .tasks
        .iter()
        .filter_map(|t| t.task_arn.rsplit('/').next()?.strip_prefix("twin"));
    let deployments = snapshot
        .services
        .iter()
        .flat_map(|s| &s.deployments)
        .filter_map(|d| d.id.strip_prefix("ecs-svc/twin"));
    tasks
        .chain(deployments)
        .filter_map(|n| n.parse::<u64>().ok())
        .max()
        .map_or(1, |n| n.saturating_add(1))
}

impl Twin {
    /// A twin that starts as the snapshot shows the cluster, at the snapshot's `capturedAt`.
    ///
    /// # Panics
    ///
    /// If two items of the snapshot share an ARN (or two services a name), naming it: the scheduler indexes the
    /// cluster on every pass and cannot run on such a snapshot. [`Twin::try_new`] returns the error instead.
    pub fn new(snapshot: Snapshot, config: TwinConfig) -> Twin {
        Twin::try_new(snapshot, config).unwrap_or_else(|e| panic!("the twin cannot run this snapshot: {e}"))
    }

    /// As [`Twin::new`], refusing a snapshot with a duplicate ARN or service name ([`DuplicateKey`] names it).
    pub fn try_new(snapshot: Snapshot, config: TwinConfig) -> Result<Twin, DuplicateKey> {
        // The same check the scheduler's index makes on every pass, made once here so it fails at load, loudly.
        let snapshot = Cluster::new(snapshot)?.into_snapshot();
        // Without `capturedAt`, start a day after the newest thing the snapshot mentions: deterministic, and past
        // every grace period. A snapshot that needs another clock says so with `capturedAt`.
        let latest = snapshot
            .container_instances
            .iter()
            .filter_map(|i| i.registered_at)
            .chain(snapshot.tasks.iter().filter_map(|t| t.created_at))
            .max()
            .map(|t| t + chrono::Duration::days(1));
        let now = snapshot.captured_at.or(latest).unwrap_or_else(default_start);
        let next_id = first_free_id(&snapshot);
        Ok(Twin {
            view: RwLock::new(None),
            state: Mutex::new(State {
                snap: snapshot,
                now,
                rng: fastrand::Rng::with_seed(config.seed),
                config,
                next_id,
                disrupted: HashSet::new(),
                stats: TwinStats::default(),
                skipped_passes: 0,
                revision: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in the twin itself; the state is still usable for a report.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// Publishes the state as the view, unless the view already shows this revision.
    fn publish_from(&self, state: &State) -> Arc<Snapshot> {
        if let Ok(Some(view)) = self.view.read().as_deref() {
            if view.revision == state.revision {
                return Arc::clone(&view.snapshot);
            }
        }
        let mut snap = state.snap.clone();
        snap.captured_at = Some(state.now);
        let snapshot = Arc::new(snap);
        let mut view = self.view.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *view = Some(View {
            revision: state.revision,
            snapshot: Arc::clone(&snapshot),
        });
        snapshot
    }

    /// The cluster now, shared: waits for a running scheduler pass, then publishes the state if it changed.
    pub fn view(&self) -> Arc<Snapshot> {
        let state = self.lock();
        self.publish_from(&state)
    }

    /// Publishes the current state now (after a write, so that the next read sees it even if a scheduler pass has
    /// begun meanwhile).
    pub fn publish(&self) {
        self.view();
    }

    /// The newest view without waiting: the current state if no scheduler pass holds it (published if it changed),
    /// else the view the last pass or write published (waiting only if nothing was ever published).
    pub fn latest_view(&self) -> Arc<Snapshot> {
        match self.state.try_lock() {
            Ok(state) => self.publish_from(&state),
            Err(TryLockError::Poisoned(state)) => self.publish_from(&state.into_inner()),
            Err(TryLockError::WouldBlock) => {
                let published = self
                    .view
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .map(|v| Arc::clone(&v.snapshot));
                published.unwrap_or_else(|| self.view())
            }
        }
    }

    /// Runs the scheduler tick by tick until `by` of simulated time has passed.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        let tick = state.config.tick.max(Duration::from_millis(1));
        let mut left = by;
        while !left.is_zero() {
            let step = left.min(tick);
            // Worth checking only when whole passes would follow this one.
            let before =
                (state.config.skip_idle && left >= tick * 3 && scheduler::nothing_timed_pending(&state)).then(|| {
                    (
                        state.revision,
                        state.stats.clone(),
                        state.disrupted.clone(),
                        state.rng.clone(),
                    )
                });
            // The tests hold the change count to the truth: a pass that counts no change must leave the cluster equal.
            #[cfg(debug_assertions)]
            let reference = before.as_ref().map(|_| state.snap.clone());
            state.now += chrono::Duration::from_std(step).unwrap_or(chrono::Duration::zero());
            scheduler::tick(&mut state);
            left -= step;
            if let Some((revision, stats, disrupted, rng)) = before {
                let unchanged = revision == state.revision
                    && stats == state.stats
                    && disrupted == state.disrupted
                    && rng == state.rng;
                #[cfg(debug_assertions)]
                assert!(
                    !unchanged || reference.as_ref() == Some(&state.snap),
                    "a scheduler pass changed the cluster without counting the change"
                );
                if unchanged {
                    let skipped = scheduler::idle_passes(&state, tick, left);
                    state.skipped_passes += u64::from(skipped);
                    state.now += chrono::Duration::from_std(tick * skipped).unwrap_or(chrono::Duration::zero());
                    left -= tick * skipped;
                }
            }
        }
    }

    /// The cluster as it is now, in the snapshot format.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        let mut snap = state.snap.clone();
        snap.captured_at = Some(state.now);
        snap
    }

    /// Reads the newest view without copying it and without waiting for a scheduler pass (the served twin answers
    /// every describe from here; see [`Twin::latest_view`]).
    pub fn read<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        f(&self.latest_view())
    }

    /// `UpdateService` with `desiredCount`: the service scheduler starts or stops tasks on its next pass, within the
    /// deployment configuration.
    pub fn set_desired_count(&self, service: &str, desired: u32) -> Result<(), EcsError> {
        let mut state = self.lock();
        let svc = state.service_mut(service)?;
        svc.desired_count = desired;
        for d in &mut svc.deployments {
            if d.status == DeploymentStatus::Primary {
                d.desired_count = desired;
            }
        }
        state.revision += 1;
        Ok(())
    }

    /// `PutAttributes` on a container instance: adds the attribute, or replaces the value of one with that name.
    pub fn put_attribute(&self, container_instance_arn: &str, name: &str, value: Option<&str>) -> Result<(), EcsError> {
        let mut state = self.lock();
        let instance = state.instance_mut(container_instance_arn)?;
        match instance.attributes.iter_mut().find(|a| a.name == name) {
            Some(a) => a.value = value.map(str::to_owned),
            None => instance.attributes.push(crate::model::Attribute {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            }),
        }
        state.revision += 1;
        Ok(())
    }

    /// The instance's agent disconnects (`false`) or comes back (`true`): while it is away nothing is placed on the
    /// instance and none of its tasks starts or stops (docs/ecs.md: A disconnected agent).
    pub fn set_agent_connected(&self, container_instance_arn: &str, connected: bool) -> Result<(), EcsError> {
        let mut state = self.lock();
        state.instance_mut(container_instance_arn)?.agent_connected = connected;
        state.revision += 1;
        Ok(())
    }

    /// A new, empty container instance joins the cluster now (an Auto Scaling scale-out). Its remaining resources
    /// are its registered ones; an instance with the same ARN is refused.
    pub fn register_instance(&self, mut instance: crate::model::ContainerInstance) -> Result<(), EcsError> {
        let mut state = self.lock();
        if state
            .snap
            .container_instances
            .iter()
            .any(|i| i.container_instance_arn == instance.container_instance_arn)
        {
            return Err(EcsError::Invalid(
                format!("{} is already registered", instance.container_instance_arn).into(),
            ));
        }
        instance.registered_at = Some(state.now);
        instance.remaining_resources = instance.registered_resources.clone();
        instance.running_tasks_count = 0;
        instance.pending_tasks_count = 0;
        instance.status = InstanceStatus::Active;
        state.snap.container_instances.push(instance);
        state.revision += 1;
        Ok(())
    }

    /// `GetTaskProtection` for one task at the twin's clock: protection that has lapsed reads as off, as ECS resets
    /// `protectionEnabled` when `expiresInMinutes` runs out.
    pub fn task_protection(&self, task_arn: &str) -> Result<ProtectedTask, ProtectionFailure> {
        let state = self.lock();
        let task = protectable(&state, task_arn)?;
        let now = state.now;
        Ok(state
            .snap
            .protected_tasks
            .iter()
            .find(|p| p.task_arn == task.task_arn && p.active_at(now))
            .cloned()
            .unwrap_or_else(|| ProtectedTask {
                task_arn: task.task_arn.clone(),
                protection_enabled: false,
                expiration_date: None,
            }))
    }

    /// `UpdateTaskProtection` for one task: on for `expires_in` from the twin's clock (ECS: 1 minute to 48 hours,
    /// 2 hours by default; the server checks the range), or off. Turning it on again resets the expiry. Refused
    /// with `DEPLOYMENT_BLOCKED` when the service would have more protected tasks than its desired count.
    pub fn set_task_protection(
        &self,
        task_arn: &str,
        enabled: bool,
        expires_in: Duration,
    ) -> Result<ProtectedTask, ProtectionFailure> {
        let mut state = self.lock();
        let now = state.now;
        let task = protectable(&state, task_arn)?;
        if !task.is_live() || task.desired_status == TaskStatus::Stopped {
            return Err(ProtectionFailure::TaskNotValid);
        }
        let (arn, service) = (
            task.task_arn.clone(),
            task.service_name().unwrap_or_default().to_owned(),
        );
        if !enabled {
            state.snap.protected_tasks.retain(|p| p.task_arn != arn);
            state.revision += 1;
            return Ok(ProtectedTask {
                task_arn: arn,
                protection_enabled: false,
                expiration_date: None,
            });
        }
        let desired = state
            .snap
            .services
            .iter()
            .find(|s| s.service_name == service)
            .map_or(0, |s| s.desired_count);
        let protected_of_service = state
            .snap
            .tasks
            .iter()
            .filter(|t| t.service_name() == Some(service.as_str()) && t.is_live() && t.task_arn != arn)
            .filter(|t| {
                state
                    .snap
                    .protected_tasks
                    .iter()
                    .any(|p| p.task_arn == t.task_arn && p.active_at(now))
            })
            .count();
        if protected_of_service + 1 > desired as usize {
            return Err(ProtectionFailure::DeploymentBlocked);
        }
        // Turning it on again resets the expiry: one entry per task.
        state.snap.protected_tasks.retain(|p| p.task_arn != arn);
        let protection = ProtectedTask {
            task_arn: arn,
            protection_enabled: true,
            expiration_date: Some(now + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::zero())),
        };
        state.snap.protected_tasks.push(protection.clone());
        state.revision += 1;
        Ok(protection)
    }

    /// Scheduler passes skipped as idle so far (see `TwinConfig::skip_idle`).
    pub fn skipped_passes(&self) -> u64 {
        self.lock().skipped_passes
    }

    pub fn stats(&self) -> TwinStats {
        self.lock().stats.clone()
    }

    /// True when every service has its desired tasks RUNNING on one completed deployment and nothing is stopping.
    pub fn is_steady(&self) -> bool {
        let state = self.lock();
        scheduler::all_steady(&state)
    }
}

impl EcsApi for Twin {
    async fn observe(&self) -> Result<Snapshot, EcsError> {
        Ok(self.snapshot())
    }

    async fn observe_shared(&self) -> Result<Arc<Snapshot>, EcsError> {
        Ok(self.view())
    }

    async fn stop_task(&self, task_arn: &str, reason: &str) -> Result<(), EcsError> {
        let mut state = self.lock();
        let now = state.now;
        let task = state
            .snap
            .tasks
            .iter_mut()
            .find(|t| t.task_arn == task_arn)
            .ok_or_else(|| EcsError::NotFound(format!("task {task_arn}").into()))?;
        if task.last_status == TaskStatus::Stopped {
            return Err(EcsError::Invalid(format!("task {task_arn} is already stopped").into()));
        }
        if reason.len() > 255 {
            return Err(EcsError::Invalid("reason is longer than 255 characters".into()));
        }
        task.desired_status = TaskStatus::Stopped;
        task.stopping_at.get_or_insert(now);
        task.stopped_reason = Some(reason.to_owned());
        if let Some(service) = task.service_name().map(str::to_owned) {
            state.disrupted.insert(service);
        }
        state.revision += 1;
        Ok(())
    }

    async fn force_new_deployment(&self, service: &str) -> Result<(), EcsError> {
        let mut state = self.lock();
        let now = state.now;
        let id = format!("ecs-svc/twin{:016}", state.next_id);
        state.next_id += 1;
        let svc = state.service_mut(service)?;
        let mut primary = svc
            .deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Primary)
            .cloned()
            .ok_or_else(|| EcsError::Invalid(format!("service {service} has no primary deployment").into()))?;
        for d in &mut svc.deployments {
            if d.status == DeploymentStatus::Primary {
                d.status = DeploymentStatus::Active;
            }
        }
        primary.id = id;
        primary.status = DeploymentStatus::Primary;
        primary.running_count = 0;
        primary.pending_count = 0;
        primary.rollout_state = Some(RolloutState::InProgress);
        primary.created_at = Some(now);
        primary.updated_at = Some(now);
        svc.deployments.insert(0, primary);
        state.disrupted.insert(service.to_owned());
        state.revision += 1;
        Ok(())
    }

    async fn set_instance_state(&self, arn: &str, to: InstanceState) -> Result<(), EcsError> {
        let mut state = self.lock();
        let instance = state.instance_mut(arn)?;
        // ACTIVE ⇄ DRAINING; asking for the state an instance is already in changes nothing and succeeds, as ECS
        // answers it; an instance in any other state cannot be updated (docs/ecs.md: Draining).
        match (&instance.status, to) {
            (InstanceStatus::Active, InstanceState::Active) | (InstanceStatus::Draining, InstanceState::Draining) => {
                return Ok(())
            }
            (InstanceStatus::Active, InstanceState::Draining) => instance.status = InstanceStatus::Draining,
            (InstanceStatus::Draining, InstanceState::Active) => instance.status = InstanceStatus::Active,
            (from, to) => {
                let to = match to {
                    InstanceState::Active => "ACTIVE",
                    InstanceState::Draining => "DRAINING",
                };
                return Err(EcsError::Invalid(
                    format!("container instance {arn} is {from} and cannot be set to {to}").into(),
                ));
            }
        }
        // ECS counts every change of an instance; a snapshot without the counter starts it here, so a second drain
        // of the same instance is a new move (its id names the version).
        instance.version = Some(instance.version.unwrap_or(0) + 1);
        state.revision += 1;
        let services: Vec<String> = state
            .snap
            .tasks
            .iter()
            .filter(|t| t.container_instance_arn.as_deref() == Some(arn))
            .filter_map(|t| t.service_name().map(str::to_owned))
            .collect();
        state.disrupted.extend(services);
        Ok(())
    }
}

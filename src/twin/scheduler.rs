//! The twin's scheduler: one pass per tick. Each rule cites docs/ecs.md.
//!
//! Order of a pass:
//! 1. Task lifecycle: PENDING tasks start after `start_delay`; tasks whose desired status is STOPPED stop after
//!    `stop_delay` and give back their resources (§3 StopTask: SIGTERM, then SIGKILL after the stop timeout). On an
//!    instance whose agent is disconnected neither happens until it reconnects (A disconnected agent).
//! 2. Daemon tasks on DRAINING instances are stopped (§3 UpdateContainerInstancesState).
//! 3. Each REPLICA service: **start** what is missing from the primary deployment (replacements after StopTask,
//!    new tasks of a forced deployment, replacements for tasks on DRAINING instances) while the service stays within
//!    `maximumPercent` (rounded down); then **stop** tasks of old deployments and on DRAINING instances while the
//!    healthy count stays at or above `minimumHealthyPercent` (rounded up) (§3 UpdateService, draining). Starting
//!    first is what makes `maximumPercent` > 100 start-before-stop. A task that cannot be placed is retried next pass
//!    (it stays PENDING in ECS's terms, §2).
//! 4. Each DAEMON service: one task on every ACTIVE, connected instance that lacks one (§2).
//! 5. Counts, deployments and rollout state are brought up to date; floor violations are counted.
//!
//! Task scale-in protection, exactly as ECS documents it
//! (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>): it protects a
//! service's tasks "from being terminated by scale-in events from either Service Auto Scaling or deployments". So a
//! rolling deployment starts new tasks within `maximumPercent` but stops no protected task of an older deployment
//! until its protection is turned off or expires (the rollout stays IN_PROGRESS meanwhile), and scale-in to a lower
//! `desiredCount` stops unprotected tasks only. Draining is neither: the draining page
//! (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html>) makes no exception
//! for protected tasks, so a DRAINING instance loses them like any other service task; StopTask does not look at
//! protection either. Protection lapses at its `expirationDate` on the twin's clock.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use chrono::Duration;

use crate::model::ecs::resource;
use crate::model::{
    Cluster, Container, DeploymentStatus, InstanceIdx, InstanceStatus, NetworkBinding, Protocol, RolloutState,
    SchedulingStrategy, Service, Task, TaskStatus,
};
use crate::placement::{Footprint, Overlay, PlacementIndex};

use super::State;

/// How long STOPPED tasks stay visible (ECS keeps them about an hour).
const STOPPED_RETENTION: i64 = 3600;

pub(crate) fn tick(state: &mut State) {
    lifecycle(state);
    lapse_protection(state);
    let facts = PassFacts::of(state);
    stop_daemons_on_draining(state, &facts);
    // Each service's tasks, by position, once per pass (tasks placed during the pass are appended, so positions
    // stay valid; a service's own placements are PENDING, which no count below needs).
    let mut by_service = tasks_by_service(&state.snap);
    // What each service will do this pass, worked out for all of them first: it depends on the service's own tasks
    // and deployments and on which instances are DRAINING, none of which another service's scheduling changes.
    let work: Vec<Work> = by_service
        .iter()
        .enumerate()
        .map(|(s, mine)| Work::of(state, s, mine, &facts))
        .collect();
    // One placement index per pass, and only for a pass that places something: tasks placed during the pass are
    // added to an overlay, so every placement sees the ones before it without rebuilding the index (docs/ecs.md:
    // Placement: placement sees current reservations).
    // The twin refuses a snapshot with duplicate keys at load and makes up only fresh ARNs, so an index that fails
    // here is a bug in the twin: stop loudly rather than skip scheduling on every pass from now on.
    let cluster = work.iter().any(Work::places).then(|| {
        Cluster::new(state.snap.clone())
            .unwrap_or_else(|e| panic!("the twin's scheduler cannot index its own cluster: {e}"))
    });
    let index = cluster.as_ref().map(PlacementIndex::new);
    let mut pass = Pass {
        index: index.as_ref(),
        overlay: Overlay::new(),
        requests: HashMap::default(),
        facts,
    };
    for ((s, mine), work) in by_service.iter_mut().enumerate().zip(work) {
        let placed_from = state.snap.tasks.len();
        match work {
            Work::Replica(replica) => schedule_replica(state, s, mine, &replica, &mut pass),
            Work::Daemon { missing } => schedule_daemon(state, s, mine, &missing, &mut pass),
            Work::Inactive => {}
        }
        // The service's new tasks, appended: the counts below include them.
        mine.extend(placed_from..state.snap.tasks.len());
    }
    update_counts(state, &by_service);
    account_floors(state);
}

/// The positions of each service's tasks, by service position: one scan of the tasks instead of one per service.
fn tasks_by_service(snap: &crate::model::Snapshot) -> Vec<Vec<usize>> {
    let at: HashMap<&str, usize> = snap
        .services
        .iter()
        .enumerate()
        .map(|(k, s)| (s.service_name.as_str(), k))
        .collect();
    let mut by = vec![Vec::new(); snap.services.len()];
    for (k, t) in snap.tasks.iter().enumerate() {
        if let Some(&s) = t.service_name().and_then(|name| at.get(name)) {
            by[s].push(k);
        }
    }
    by
}

/// What every service's scheduling reads and no scheduling in the pass changes: computed once per pass.
struct PassFacts {
    /// The ARNs of DRAINING instances.
    draining: HashSet<String>,
    /// Tasks whose scale-in protection holds now: deployments and scale-in leave them alone.
    protected: HashSet<String>,
}

impl PassFacts {
    fn of(state: &State) -> PassFacts {
        PassFacts {
            draining: state
                .snap
                .container_instances
                .iter()
                .filter(|i| i.status == InstanceStatus::Draining)
                .map(|i| i.container_instance_arn.clone())
                .collect(),
            protected: state
                .snap
                .protected_tasks
                .iter()
                .filter(|p| p.active_at(state.now))
                .map(|p| p.task_arn.clone())
                .collect(),
        }
    }

    fn on_draining(&self, t: &Task) -> bool {
        !self.draining.is_empty()
            && t.container_instance_arn
                .as_deref()
                .is_some_and(|a| self.draining.contains(a))
    }
}

/// What one service does in a pass, as far as it is known before any service is scheduled.
enum Work {
    /// Not ACTIVE: nothing.
    Inactive,
    Replica(Replica),
    /// The instances that will lack the daemon once its unprotected tasks of older deployments are stopped.
    Daemon {
        missing: Vec<InstanceIdx>,
    },
}

impl Work {
    fn of(state: &State, s: usize, mine: &[usize], facts: &PassFacts) -> Work {
        let svc = &state.snap.services[s];
        if svc.status != "ACTIVE" {
            return Work::Inactive;
        }
        if svc.scheduling_strategy != SchedulingStrategy::Daemon {
            return Work::Replica(Replica::of(state, s, mine, facts));
        }
        let deployment = primary_id(svc).unwrap_or_default();
        let holding: HashSet<&str> = mine
            .iter()
            .map(|&k| &state.snap.tasks[k])
            .filter(|t| {
                // Live, and not about to be stopped as a task of an older deployment (protected ones stay).
                let stays = !old_daemon_task(svc, &deployment, t) || facts.protected.contains(&t.task_arn);
                is_live(t) && stays
            })
            .filter_map(|t| t.container_instance_arn.as_deref())
            .collect();
        let missing = state
            .snap
            .container_instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.can_take_tasks() && !holding.contains(i.container_instance_arn.as_str()))
            .map(|(k, _)| InstanceIdx(k))
            .collect();
        Work::Daemon { missing }
    }

    /// Whether the service places a task this pass: the entry condition of [`schedule_replica`]'s start loop, or a
    /// daemon missing from an instance.
    fn places(&self) -> bool {
        match self {
            Work::Inactive => false,
            Work::Replica(r) => r.missing() > 0 && r.total() < r.ceiling,
            Work::Daemon { missing } => !missing.is_empty(),
        }
    }
}

/// A REPLICA service's live tasks and how many of them are settled (of the primary deployment, not on a DRAINING
/// instance), as the start loop of [`schedule_replica`] counts them.
struct Replica {
    primary: String,
    deployment_ids: Vec<String>,
    desired: u32,
    /// ECS's healthy floor and ceiling for the service (§3).
    floor: u32,
    ceiling: u32,
    live: Vec<usize>,
    settled: usize,
}

impl Replica {
    fn of(state: &State, s: usize, mine: &[usize], facts: &PassFacts) -> Replica {
        let svc = &state.snap.services[s];
        let (floor, ceiling) = bounds(svc);
        let mut r = Replica {
            primary: primary_id(svc).unwrap_or_default(),
            deployment_ids: svc.deployments.iter().map(|d| d.id.clone()).collect(),
            desired: svc.desired_count,
            floor,
            ceiling,
            live: mine
                .iter()
                .copied()
                .filter(|&k| is_live(&state.snap.tasks[k]))
                .collect(),
            settled: 0,
        };
        r.settled = r
            .live
            .iter()
            .filter(|&&k| r.is_primary(&state.snap.tasks[k]) && !facts.on_draining(&state.snap.tasks[k]))
            .count();
        r
    }

    /// A task belongs to the primary deployment when started by it, or by nothing the service still lists.
    fn is_primary(&self, t: &Task) -> bool {
        let by = t.started_by.as_deref().unwrap_or("");
        by == self.primary || !self.deployment_ids.iter().any(|d| d == by)
    }

    fn missing(&self) -> u32 {
        self.desired
            .saturating_sub(u32::try_from(self.settled).unwrap_or(u32::MAX))
    }

    fn total(&self) -> u32 {
        u32::try_from(self.live.len()).unwrap_or(u32::MAX)
    }
}

/// A daemon task started by a deployment the service still lists, other than the primary.
fn old_daemon_task(svc: &Service, primary: &str, t: &Task) -> bool {
    let by = t.started_by.as_deref().unwrap_or("");
    by != primary && svc.deployments.iter().any(|d| d.id == by)
}

/// What one scheduler pass shares between placements.
struct Pass<'i, 'c> {
    /// `None` when no service places a task this pass.
    index: Option<&'i PlacementIndex<'c>>,
    /// Tasks placed so far in this pass.
    overlay: Overlay,
    /// Each service's placement request, built on first use (`None`: the service cannot be placed).
    requests: HashMap<usize, Option<crate::placement::TaskRequest>>,
    facts: PassFacts,
}

fn std_to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::zero())
}

/// ECS's healthy floor and ceiling for a service (§3: minimum rounded up, maximum rounded down).
fn bounds(svc: &Service) -> (u32, u32) {
    let d = u64::from(svc.desired_count);
    let ceiling = (u64::from(svc.maximum_percent()) * d / 100).max(d.min(1));
    (
        crate::plan::safety::floor(svc),
        u32::try_from(ceiling).unwrap_or(u32::MAX),
    )
}

fn is_live(t: &Task) -> bool {
    t.desired_status != TaskStatus::Stopped && t.last_status != TaskStatus::Stopped
}

fn is_healthy(t: &Task) -> bool {
    is_live(t) && t.last_status == TaskStatus::Running
}

/// Step 1: PENDING → RUNNING after `start_delay`; desired STOPPED → STOPPED after `stop_delay`, resources released.
fn lifecycle(state: &mut State) {
    let now = state.now;
    let (start, stop) = (
        std_to_chrono(state.config.start_delay),
        std_to_chrono(state.config.stop_delay),
    );
    let mut released: Vec<(usize, Footprint, Vec<String>)> = Vec::new();
    // The agent starts and stops tasks: on an instance whose agent is disconnected nothing changes until it is back
    // (docs/ecs.md: A disconnected agent).
    let disconnected: HashSet<String> = state
        .snap
        .container_instances
        .iter()
        .filter(|i| !i.agent_connected)
        .map(|i| i.container_instance_arn.clone())
        .collect();
    for t in &mut state.snap.tasks {
        if t.last_status == TaskStatus::Stopped
            || t.container_instance_arn
                .as_ref()
                .is_some_and(|a| disconnected.contains(a))
        {
            continue;
        }
        // A snapshot may show a task stopping or pending without saying since when: the clock starts now.
        if t.desired_status == TaskStatus::Stopped && t.stopping_at.is_none() {
            t.stopping_at = Some(now);
            state.revision += 1;
        }
        if t.last_status == TaskStatus::Pending && t.created_at.is_none() {
            t.created_at = Some(now);
            state.revision += 1;
        }
        if t.desired_status == TaskStatus::Stopped {
            let since = t.stopping_at.unwrap_or(now);
            if now - since >= stop || t.last_status == TaskStatus::Pending {
                state.revision += 1;
                t.last_status = TaskStatus::Stopped;
                t.stopped_at = Some(now);
                t.stop_code.get_or_insert_with(|| "UserInitiated".into());
                for c in &mut t.containers {
                    c.last_status = Some("STOPPED".into());
                }
                if let Some(i) = t
                    .container_instance_arn
                    .as_deref()
                    .and_then(|a| position(&state.snap.container_instances, a))
                {
                    let gpus: Vec<String> = t.containers.iter().flat_map(|c| c.gpu_ids.clone()).collect();
                    if let Ok(fp) = Footprint::of_task(t) {
                        released.push((i, fp, gpus));
                    }
                }
                state.stats.tasks_stopped += 1;
            }
        } else if t.last_status == TaskStatus::Pending && now - t.created_at.unwrap_or(now) >= start {
            state.revision += 1;
            t.last_status = TaskStatus::Running;
            t.started_at = Some(now);
            for c in &mut t.containers {
                c.last_status = Some("RUNNING".into());
            }
        }
    }
    for (i, fp, gpus) in released {
        fp.book(&mut state.snap.container_instances[i], &gpus, false);
    }
    let horizon = now - Duration::seconds(STOPPED_RETENTION);
    retain(
        &mut state.snap.tasks,
        |t| t.last_status != TaskStatus::Stopped || t.stopped_at.is_none_or(|s| s > horizon),
        &mut state.revision,
    );
}

/// Protection that has expired is off (ECS resets `protectionEnabled`), and a stopped task has none.
fn lapse_protection(state: &mut State) {
    let now = state.now;
    let tasks = &state.snap.tasks;
    retain(
        &mut state.snap.protected_tasks,
        |p| {
            p.active_at(now)
                && tasks
                    .iter()
                    .any(|t| t.task_arn == p.task_arn && t.last_status != TaskStatus::Stopped)
        },
        &mut state.revision,
    );
}

fn position(instances: &[crate::model::ContainerInstance], arn: &str) -> Option<usize> {
    instances.iter().position(|i| i.container_instance_arn == arn)
}

/// Step 2: daemon tasks on a DRAINING instance are stopped (§3).
fn stop_daemons_on_draining(state: &mut State, facts: &PassFacts) {
    if facts.draining.is_empty() {
        return;
    }
    let now = state.now;
    let daemons: HashSet<String> = state
        .snap
        .services
        .iter()
        .filter(|s| s.scheduling_strategy == SchedulingStrategy::Daemon)
        .map(|s| s.service_name.clone())
        .collect();
    if daemons.is_empty() {
        return;
    }
    for t in &mut state.snap.tasks {
        let daemon = t.service_name().is_some_and(|s| daemons.contains(s));
        if daemon && facts.on_draining(t) && is_live(t) {
            t.desired_status = TaskStatus::Stopped;
            t.stopping_at = Some(now);
            t.stopped_reason = Some("Container instance is draining".into());
            state.revision += 1;
        }
    }
}

/// Places one new task of service `s` (for deployment `deployment`), optionally only on instance `only`.
/// Returns whether it was placed.
fn place(state: &mut State, s: usize, deployment: &str, only: Option<InstanceIdx>, pass: &mut Pass<'_, '_>) -> bool {
    let index = pass
        .index
        .expect("the twin's scheduler builds the index for a pass in which a service places a task");
    let request = pass
        .requests
        .entry(s)
        .or_insert_with(|| index.request_for_service(&index.cluster().services()[s]).ok());
    let Some(request) = request.as_ref() else {
        state.stats.placement_failures += 1;
        return false;
    };
    let p = index.candidates(request, &pass.overlay);
    let choices: Vec<InstanceIdx> = match only {
        Some(i) => p.feasible.iter().copied().filter(|&f| f == i).collect(),
        None => p.candidates,
    };
    if choices.is_empty() {
        state.stats.placement_failures += 1;
        return false;
    }
    // ECS does not document its tie-break among equally good instances: a seeded choice stands in for it.
    let at = choices[state.rng.usize(..choices.len())];
    let svc = &state.snap.services[s];
    let Some(td) = svc
        .task_definition
        .as_deref()
        .and_then(|arn| index.cluster().task_definition(arn))
        .cloned()
    else {
        return false;
    };
    pass.overlay.start(at, &request.group, request.footprint.clone());
    let fp = request.footprint.clone();
    let instance = &mut state.snap.container_instances[at.get()];
    let gpus: Vec<String> = instance
        .remaining(resource::GPU)
        .and_then(|r| r.string_set_value.clone())
        .unwrap_or_default()
        .into_iter()
        .take(fp.gpus as usize)
        .collect();
    fp.book(instance, &gpus, true);
    let instance_arn = instance.container_instance_arn.clone();
    let az = instance.availability_zone().map(str::to_owned);
    let svc_name = state.snap.services[s].service_name.clone();
    let prefix = state
        .snap
        .cluster_arn
        .as_deref()
        .and_then(|a| a.split(":cluster/").next())
        .unwrap_or("arn:aws:ecs:twin:000000000000")
        .to_owned();
    let task_arn = format!("{prefix}:task/{}/twin{:020}", state.snap.cluster, state.next_id);
    state.next_id += 1;
    let mut tcp = fp.tcp_ports.iter();
    let mut udp = fp.udp_ports.iter();
    let containers: Vec<Container> = td
        .container_definitions
        .iter()
        .enumerate()
        .map(|(k, c)| Container {
            name: c.name.clone(),
            container_arn: None,
            last_status: Some("PENDING".into()),
            cpu: Some(c.cpu.to_string()),
            memory: c.memory.map(|m| m.to_string()),
            memory_reservation: c.memory_reservation.map(|m| m.to_string()),
            network_bindings: c
                .port_mappings
                .iter()
                .filter_map(|pm| {
                    let udp_port = pm.protocol == Some(Protocol::Udp);
                    let host = if udp_port { udp.next() } else { tcp.next() }?;
                    Some(NetworkBinding {
                        bind_ip: Some("0.0.0.0".into()),
                        container_port: pm.container_port,
                        host_port: Some(*host),
                        protocol: Some(if udp_port { Protocol::Udp } else { Protocol::Tcp }),
                        container_port_range: None,
                        host_port_range: None,
                    })
                })
                .collect(),
            gpu_ids: if k == 0 { gpus.clone() } else { Vec::new() },
        })
        .collect();
    let now = state.now;
    state.revision += 1;
    state.snap.tasks.push(Task {
        task_arn,
        cluster_arn: state.snap.cluster_arn.clone(),
        container_instance_arn: Some(instance_arn),
        task_definition_arn: td.task_definition_arn.clone(),
        group: Some(format!("service:{svc_name}")),
        started_by: Some(deployment.to_owned()),
        last_status: TaskStatus::Pending,
        desired_status: TaskStatus::Running,
        launch_type: Some("EC2".into()),
        capacity_provider_name: None,
        availability_zone: az,
        cpu: Some(fp.cpu.to_string()),
        memory: Some(fp.memory.to_string()),
        created_at: Some(now),
        started_at: None,
        stopping_at: None,
        stopped_at: None,
        stopped_reason: None,
        stop_code: None,
        version: Some(1),
        containers,
        tags: Vec::new(),
    });
    state.stats.tasks_started += 1;
    true
}

fn primary_id(svc: &Service) -> Option<String> {
    svc.deployments
        .iter()
        .find(|d| d.status == DeploymentStatus::Primary)
        .map(|d| d.id.clone())
}

/// Step 3, the replica scheduler for one service: start within `maximumPercent`, then stop within
/// `minimumHealthyPercent`.
fn schedule_replica(state: &mut State, s: usize, mine: &[usize], replica: &Replica, pass: &mut Pass<'_, '_>) {
    let (floor, ceiling) = (replica.floor, replica.ceiling);
    let (mut missing, mut total) = (replica.missing(), replica.total());
    let facts = &pass.facts;
    let is_protected = |t: &Task| facts.protected.contains(&t.task_arn);
    // Draining stops every service task on the instance; a deployment stops only unprotected tasks of older ones.
    let mut to_stop: Vec<usize> = replica
        .live
        .iter()
        .copied()
        .filter(|&k| {
            let t = &state.snap.tasks[k];
            facts.on_draining(t) || (!replica.is_primary(t) && !is_protected(t))
        })
        .collect();
    // Scale-in of the primary beyond desired: extra settled tasks go too, never protected ones.
    let extra = replica.settled.saturating_sub(replica.desired as usize);
    to_stop.extend(
        replica
            .live
            .iter()
            .copied()
            .filter(|&k| {
                let t = &state.snap.tasks[k];
                replica.is_primary(t) && !facts.on_draining(t) && !is_protected(t)
            })
            .take(extra),
    );

    // Start first: within maximumPercent, new tasks start before old ones stop.
    while missing > 0 && total < ceiling {
        if !place(state, s, &replica.primary, None, pass) {
            break;
        }
        missing -= 1;
        total += 1;
    }
    // Then stop old and draining tasks while the healthy count stays at or above the floor.
    let now = state.now;
    // Tasks placed above are PENDING, not healthy: the service's tasks from before the pass are all there is to count.
    let mut healthy = mine.iter().filter(|&&k| is_healthy(&state.snap.tasks[k])).count() as u32;
    for k in to_stop {
        let t = &mut state.snap.tasks[k];
        let counts = u32::from(t.last_status == TaskStatus::Running);
        // A PENDING task is not healthy: stopping it never lowers the healthy count (§3: PENDING tasks on a
        // DRAINING instance stop at once).
        if counts == 1 && healthy.saturating_sub(1) < floor {
            continue;
        }
        // With maximumPercent 100 there is no room to start first: ECS stops down to the floor, then starts.
        t.desired_status = TaskStatus::Stopped;
        t.stopping_at = Some(now);
        t.stopped_reason
            .get_or_insert_with(|| "Task stopped by the service scheduler".into());
        state.revision += 1;
        healthy -= counts;
    }
}

/// Step 4: one daemon task on every ACTIVE, connected instance that lacks one (§2, ECS services: DAEMON), at the
/// instances [`Work::of`] found missing.
fn schedule_daemon(state: &mut State, s: usize, mine: &[usize], missing: &[InstanceIdx], pass: &mut Pass<'_, '_>) {
    let svc = &state.snap.services[s];
    let deployment = primary_id(svc).unwrap_or_default();
    // A forced deployment replaces daemon tasks instance by instance: the old task stops, then the new one starts
    // where it was (daemons default to minimum 0 % / maximum 100 %).
    let now = state.now;
    let old: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&k| {
            let t = &state.snap.tasks[k];
            is_live(t) && old_daemon_task(svc, &deployment, t) && !pass.facts.protected.contains(&t.task_arn)
        })
        .collect();
    for k in old {
        let t = &mut state.snap.tasks[k];
        t.desired_status = TaskStatus::Stopped;
        t.stopping_at = Some(now);
        t.stopped_reason = Some("Task stopped by a new deployment".into());
        state.revision += 1;
    }
    for &i in missing {
        place(state, s, &deployment, Some(i), pass);
    }
}

/// Step 5: running and pending counts on instances, services and deployments; finished rollouts.
fn update_counts(state: &mut State, by_service: &[Vec<usize>]) {
    let now = state.now;
    let mut per_instance: HashMap<&str, (u32, u32)> = HashMap::default();
    for t in &state.snap.tasks {
        if let Some(a) = t.container_instance_arn.as_deref() {
            let e = per_instance.entry(a).or_default();
            match t.last_status {
                TaskStatus::Running => e.0 += 1,
                TaskStatus::Pending | TaskStatus::Provisioning | TaskStatus::Activating => e.1 += 1,
                _ => {}
            }
        }
    }
    let counts: Vec<(u32, u32)> = state
        .snap
        .container_instances
        .iter()
        .map(|i| {
            per_instance
                .get(i.container_instance_arn.as_str())
                .copied()
                .unwrap_or_default()
        })
        .collect();
    let revision = &mut state.revision;
    for (i, (running, pending)) in state.snap.container_instances.iter_mut().zip(counts) {
        set(&mut i.running_tasks_count, running, revision);
        set(&mut i.pending_tasks_count, pending, revision);
    }
    let tasks = &state.snap.tasks;
    for (s, mine) in by_service.iter().enumerate() {
        let mut by_deployment: HashMap<&str, (u32, u32)> = HashMap::default();
        let (mut running, mut pending) = (0, 0);
        for t in mine.iter().map(|&k| &tasks[k]).filter(|t| is_live(t)) {
            let e = by_deployment
                .entry(t.started_by.as_deref().unwrap_or_default())
                .or_default();
            if t.last_status == TaskStatus::Running {
                running += 1;
                e.0 += 1;
            } else {
                pending += 1;
                e.1 += 1;
            }
        }
        let svc = &mut state.snap.services[s];
        set(&mut svc.running_count, running, &mut state.revision);
        set(&mut svc.pending_count, pending, &mut state.revision);
        let primary = primary_id(svc).unwrap_or_default();
        let old_alive = svc
            .deployments
            .iter()
            .any(|d| d.id != primary && by_deployment.get(d.id.as_str()).is_some_and(|(r, p)| r + p > 0));
        let desired = svc.desired_count;
        let daemon = svc.scheduling_strategy == SchedulingStrategy::Daemon;
        let primary_ids: Vec<String> = svc.deployments.iter().map(|d| d.id.clone()).collect();
        for d in &mut svc.deployments {
            let (r, p) = by_deployment.get(d.id.as_str()).copied().unwrap_or_default();
            // Tasks started by something the service no longer lists count for the primary.
            let (r, p) = if d.id == primary {
                let orphans = by_deployment
                    .iter()
                    .filter(|(k, _)| !primary_ids.iter().any(|id| id == *k))
                    .fold((0, 0), |acc, (_, v)| (acc.0 + v.0, acc.1 + v.1));
                (r + orphans.0, p + orphans.1)
            } else {
                (r, p)
            };
            set(&mut d.running_count, r, &mut state.revision);
            set(&mut d.pending_count, p, &mut state.revision);
            if d.id == primary {
                let want = if daemon { running + pending } else { desired };
                set(&mut d.desired_count, want, &mut state.revision);
            }
        }
        if daemon {
            set(
                &mut svc.desired_count,
                svc.running_count + svc.pending_count,
                &mut state.revision,
            );
        }
        if !old_alive {
            retain(&mut svc.deployments, |d| d.id == primary, &mut state.revision);
        }
        if let Some(d) = svc.deployments.iter_mut().find(|d| d.id == primary) {
            if d.rollout_state == Some(RolloutState::InProgress) && !old_alive && d.running_count >= d.desired_count {
                d.rollout_state = Some(RolloutState::Completed);
                d.rollout_state_reason = Some(format!("ECS deployment {} completed.", d.id));
                d.updated_at = Some(now);
                state.revision += 1;
            }
        }
    }
}

/// Assigns `value` and counts a change, if it is one.
fn set<T: PartialEq>(field: &mut T, value: T, revision: &mut u64) {
    if *field != value {
        *field = value;
        *revision += 1;
    }
}

/// `Vec::retain`, counting a change if anything went.
fn retain<T>(items: &mut Vec<T>, keep: impl FnMut(&T) -> bool, revision: &mut u64) {
    let before = items.len();
    items.retain(keep);
    if items.len() != before {
        *revision += 1;
    }
}

/// Whether a service has all its desired tasks RUNNING on one completed deployment, and nothing pending.
fn steady(svc: &Service) -> bool {
    svc.running_count >= svc.desired_count
        && svc.pending_count == 0
        && svc.deployments.len() <= 1
        && svc
            .deployments
            .first()
            .is_none_or(|d| d.rollout_state.as_ref().is_none_or(|r| *r == RolloutState::Completed))
}

/// Counts ticks where a service an API call disrupted is below its healthy floor.
fn account_floors(state: &mut State) {
    let mut recovered = Vec::new();
    for svc in &state.snap.services {
        if !state.disrupted.contains(&svc.service_name) || svc.scheduling_strategy == SchedulingStrategy::Daemon {
            continue;
        }
        let (floor, _) = bounds(svc);
        if svc.running_count < floor {
            state.stats.floor_violations += 1;
            if !state.stats.floor_violators.contains(&svc.service_name) {
                state.stats.floor_violators.push(svc.service_name.clone());
            }
        }
        let stopping = state.snap.tasks.iter().any(|t| {
            t.service_name() == Some(svc.service_name.as_str())
                && t.desired_status == TaskStatus::Stopped
                && t.last_status != TaskStatus::Stopped
        });
        if steady(svc) && !stopping {
            recovered.push(svc.service_name.clone());
        }
    }
    for s in recovered {
        state.disrupted.remove(&s);
    }
}

/// Nothing waits on the clock but the timed events [`idle_passes`] knows: no PENDING task (start delay), no task
/// stopping (stop delay). With this, a pass that changed nothing is followed by passes that change nothing, until
/// the next timed event or an API call.
pub(crate) fn nothing_timed_pending(state: &State) -> bool {
    !state.snap.tasks.iter().any(|t| {
        t.last_status == TaskStatus::Pending
            || (t.desired_status == TaskStatus::Stopped && t.last_status != TaskStatus::Stopped)
    })
}

/// How many whole passes after a pass that changed nothing (with [`nothing_timed_pending`]) change nothing either:
/// those before the next timed event (a STOPPED task leaving the retention window, a task's protection expiring),
/// and within `left`.
pub(crate) fn idle_passes(state: &State, tick: std::time::Duration, left: std::time::Duration) -> u32 {
    let retention = state
        .snap
        .tasks
        .iter()
        .filter(|t| t.last_status == TaskStatus::Stopped)
        .filter_map(|t| t.stopped_at)
        .map(|s| s + Duration::seconds(STOPPED_RETENTION));
    let expiry = state
        .snap
        .protected_tasks
        .iter()
        .filter(|p| p.active_at(state.now))
        .filter_map(|p| p.expiration_date);
    let by_time = u32::try_from(left.as_nanos() / tick.as_nanos().max(1)).unwrap_or(u32::MAX);
    match retention.chain(expiry).min() {
        None => by_time,
        Some(event) => {
            // Passes strictly before the event's pass: at now + k·tick < event.
            let until = (event - state.now).to_std().unwrap_or_default();
            let before_event =
                u32::try_from(until.as_nanos().saturating_sub(1) / tick.as_nanos().max(1)).unwrap_or(u32::MAX);
            by_time.min(before_event)
        }
    }
}

pub(crate) fn all_steady(state: &State) -> bool {
    state.snap.services.iter().all(steady)
        && !state
            .snap
            .tasks
            .iter()
            .any(|t| t.desired_status == TaskStatus::Stopped && t.last_status != TaskStatus::Stopped)
}

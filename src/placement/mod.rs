//! The placement engine: where ECS can, and will, put a new task. Pure: no I/O, no clock, no randomness.
//!
//! ECS places a task in four steps (docs/ecs.md: Placement, task-placement): (1) instances with the CPU, memory, GPUs and
//! host ports the task needs; (2) of those, the ones that satisfy every placement constraint; (3) the strategy chain,
//! rule by rule; (4) one pick. This module reproduces steps 1–3 and returns step 4 as a **set**: ECS does not
//! document its final tie-break, so every instance it could pick is a candidate.
//!
//! - [`fit`]: what a task reserves, what an instance has left.
//! - [`cql`]: the cluster query language of `memberOf` constraints.
//! - [`strategy`]: binpack, spread, random, and the default for services.
//! - this file: [`PlacementIndex`] (built once per cluster), [`TaskRequest`] (built once per service),
//!   [`Overlay`] (what-if changes without copying the cluster), and [`Placement`], the answer with a reason for
//!   every instance ruled out.

pub mod cql;
mod explain;
pub mod fit;
pub mod strategy;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::model::{
    Cluster, ContainerInstance, InstanceIdx, InstanceStatus, PlacementConstraintType, SchedulingStrategy, Service,
    TaskIdx,
};

pub use explain::{RejectedInstance, ServicePlacement};
pub use fit::{Capacity, Footprint, Misfit, Unpredictable};
pub use strategy::Rule;

/// A placement constraint of a task, from its service and its task definition together.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// Every task of the group on a different instance.
    DistinctInstance,
    /// Only instances for which the expression holds.
    MemberOf { text: Arc<str>, expr: cql::Expr },
}

/// Everything the engine needs to place one new task of a service.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The task group: `service:<name>` for service tasks. Spread and distinctInstance count over it.
    pub group: String,
    pub footprint: Footprint,
    pub constraints: Vec<Constraint>,
    pub rules: Vec<Rule>,
    /// DAEMON services run one task per instance: an instance already running one is ruled out, and every
    /// feasible instance is a candidate.
    pub daemon: bool,
    /// Per instance, whether the constraints that depend only on the instance itself hold (computed once per
    /// index and set of constraints, shared by the services that have the same).
    static_ok: Arc<[bool]>,
    /// The first static constraint that failed, per instance (index into `constraints`).
    static_failed: Arc<[Option<usize>]>,
}

/// The static `memberOf` constraints of a request, by position: what its per-instance verdicts depend on.
type StaticKey = Vec<(usize, Arc<str>)>;

/// Per instance: whether the static constraints hold, and the first that failed.
type StaticVerdicts = (Arc<[bool]>, Arc<[Option<usize>]>);

/// Why an instance cannot take the task. The first reason found, in ECS's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The instance is not ACTIVE (only ACTIVE instances accept placements).
    NotActive(InstanceStatus),
    AgentDisconnected,
    /// The caller ruled it out (for example: it is about to be drained).
    Excluded(Arc<str>),
    /// `remainingResources` lacks CPU or MEMORY, so nothing can be said to fit.
    NoCapacityReported,
    Resources(Misfit),
    MemberOf(Arc<str>),
    DistinctInstance(String),
    DaemonPresent(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotActive(status) => write!(f, "not ACTIVE ({status})"),
            Rejection::AgentDisconnected => f.write_str("agent disconnected"),
            Rejection::Excluded(reason) => write!(f, "excluded: {reason}"),
            Rejection::NoCapacityReported => f.write_str("remainingResources reports no CPU or MEMORY"),
            Rejection::Resources(m) => write!(f, "{m}"),
            Rejection::MemberOf(expr) => write!(f, "memberOf({expr}) is false"),
            Rejection::DistinctInstance(group) => write!(f, "distinctInstance: already runs a task of {group}"),
            Rejection::DaemonPresent(group) => write!(f, "daemon: already runs a task of {group}"),
        }
    }
}

/// The answer: where the task fits, where ECS would choose, and why every other instance is out.
/// Instances are in snapshot order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Instances that satisfy resources and constraints.
    pub feasible: Vec<InstanceIdx>,
    /// The subset of `feasible` the strategy chain would choose among (empty when nothing fits: the task would stay
    /// PENDING).
    pub candidates: Vec<InstanceIdx>,
    /// Every other instance, with the first reason.
    pub rejected: Vec<(InstanceIdx, Rejection)>,
}

/// What-if changes to a cluster, applied to a query without copying anything.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Tasks pretended stopped: their resources, ports and group membership are free.
    stopped: Vec<Stopped>,
    /// Instances pretended unable to take tasks.
    excluded: Vec<Excluded>,
    /// Tasks pretended started.
    started: Vec<Started>,
}

/// A running task an [`Overlay`] pretends stopped.
#[derive(Debug, Clone)]
struct Stopped {
    task: TaskIdx,
    /// The instance it ran on.
    instance: InstanceIdx,
    group: String,
    /// What it held there.
    footprint: Footprint,
}

/// An instance an [`Overlay`] pretends unable to take tasks.
#[derive(Debug, Clone)]
struct Excluded {
    instance: InstanceIdx,
    reason: Arc<str>,
}

/// A task an [`Overlay`] pretends started.
#[derive(Debug, Clone)]
struct Started {
    instance: InstanceIdx,
    group: String,
    footprint: Footprint,
}

impl Overlay {
    pub fn new() -> Overlay {
        Overlay::default()
    }

    /// Pretends the task is stopped. Stopping it again changes nothing.
    pub fn stop(&mut self, cluster: &Cluster, task: TaskIdx) -> Result<&mut Self, Unpredictable> {
        if self.is_stopped(task) {
            return Ok(self);
        }
        let t = cluster
            .tasks()
            .get(task.get())
            .ok_or_else(|| Unpredictable(format!("no task at position {}", task.get())))?;
        let instance = t
            .container_instance_arn
            .as_deref()
            .and_then(|arn| cluster.instance_index(arn))
            .ok_or_else(|| Unpredictable(format!("task {} is on no known instance", t.task_arn)))?;
        let footprint = Footprint::of_task(t)?;
        self.stopped.push(Stopped {
            task,
            instance,
            group: t.group.clone().unwrap_or_default(),
            footprint,
        });
        Ok(self)
    }

    /// Pretends the instance takes no new tasks.
    pub fn exclude(&mut self, instance: InstanceIdx, reason: &str) -> &mut Self {
        self.excluded.push(Excluded {
            instance,
            reason: Arc::from(reason),
        });
        self
    }

    /// Pretends a task of `group` with this footprint was started on the instance.
    pub fn start(&mut self, instance: InstanceIdx, group: &str, footprint: Footprint) -> &mut Self {
        self.started.push(Started {
            instance,
            group: group.to_owned(),
            footprint,
        });
        self
    }

    fn is_stopped(&self, task: TaskIdx) -> bool {
        self.stopped.iter().any(|s| s.task == task)
    }

    /// Instances whose capacity or tasks the overlay changes, sorted, unique.
    fn touched(&self) -> Vec<InstanceIdx> {
        let mut v: Vec<InstanceIdx> = self
            .stopped
            .iter()
            .map(|s| s.instance)
            .chain(self.started.iter().map(|s| s.instance))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// A cluster prepared for placement queries. Built once; every query is `O(instances)` plus the group's tasks.
pub struct PlacementIndex<'c> {
    cluster: &'c Cluster,
    capacity: Vec<Option<Capacity>>,
    ineligible: Vec<Option<Rejection>>,
    // The hot path reads these dense columns (one cache line holds eight instances) rather than `capacity`.
    /// ACTIVE, agent connected, and CPU and MEMORY reported.
    open: Vec<bool>,
    cpu: Vec<i64>,
    memory: Vec<i64>,
    gpus: Vec<i64>,
    /// Live tasks per instance by group: group → [(instance, count)], sorted by instance.
    groups: HashMap<&'c str, Vec<(InstanceIdx, u32)>>,
    /// Attribute values by instance position, for spread rules, precomputed for the attributes services use.
    columns: HashMap<String, strategy::Column>,
    /// Static constraint verdicts already computed on this index: most services share a handful of expressions.
    statics: std::sync::Mutex<HashMap<StaticKey, StaticVerdicts>>,
    /// memberOf expressions already parsed on this index (a parse compiles its regular expressions), or why not.
    parsed: std::sync::Mutex<HashMap<String, Result<cql::Expr, String>>>,
}

impl<'c> PlacementIndex<'c> {
    pub fn new(cluster: &'c Cluster) -> PlacementIndex<'c> {
        let instances = cluster.instances();
        let ineligible: Vec<Option<Rejection>> = instances.iter().map(eligibility).collect();
        let capacity: Vec<Option<Capacity>> = instances.iter().map(Capacity::remaining).collect();
        let open = ineligible
            .iter()
            .zip(&capacity)
            .map(|(r, c)| r.is_none() && c.is_some())
            .collect();
        let dense = |f: fn(&Capacity) -> i64| capacity.iter().map(|c| c.as_ref().map_or(0, f)).collect();
        let (cpu, memory, gpus) = (dense(|c| c.cpu), dense(|c| c.memory), dense(|c| c.gpus));
        let mut groups: HashMap<&str, HashMap<InstanceIdx, u32>> = HashMap::new();
        for i in cluster.instance_indexes() {
            for &t in cluster.task_indexes_on(i) {
                if let Some(g) = counted_group(cluster.task_at(t)) {
                    *groups.entry(g).or_default().entry(i).or_default() += 1;
                }
            }
        }
        let groups = groups
            .into_iter()
            .map(|(g, per)| {
                let mut v: Vec<(InstanceIdx, u32)> = per.into_iter().collect();
                v.sort_unstable();
                (g, v)
            })
            .collect();
        let mut names: Vec<&str> = vec![strategy::AVAILABILITY_ZONE];
        for s in cluster.services() {
            names.extend(
                s.placement_strategy
                    .iter()
                    .filter_map(|p| p.field.as_deref()?.strip_prefix("attribute:")),
            );
        }
        // Most services name the same few attributes: one column each.
        names.sort_unstable();
        names.dedup();
        let columns = names
            .into_iter()
            .map(|name| (name.to_owned(), strategy::Column::new(instances, name)))
            .collect();
        PlacementIndex {
            cluster,
            capacity,
            ineligible,
            open,
            cpu,
            memory,
            gpus,
            groups,
            columns,
            statics: std::sync::Mutex::default(),
            parsed: std::sync::Mutex::default(),
        }
    }

    pub fn cluster(&self) -> &'c Cluster {
        self.cluster
    }

    /// Prepares a request for one new task of the named service.
    pub fn request_for_service(&self, service: &Service) -> Result<TaskRequest, Unpredictable> {
        let name = &service.service_name;
        if service.launch_type.as_deref().is_some_and(|l| l != "EC2") {
            return Err(Unpredictable(format!(
                "service {name} uses launch type {}; only EC2 is modelled",
                service.launch_type.as_deref().unwrap_or_default()
            )));
        }
        let td_arn = service
            .task_definition
            .as_deref()
            .ok_or_else(|| Unpredictable(format!("service {name} names no task definition")))?;
        let td = self.cluster.task_definition(td_arn).ok_or_else(|| {
            Unpredictable(format!(
                "task definition {td_arn} of service {name} is not in the snapshot"
            ))
        })?;
        let footprint = Footprint::for_definition(td)?;
        let mut constraints = Vec::new();
        for c in service.placement_constraints.iter().chain(&td.placement_constraints) {
            constraints.push(match &c.kind {
                PlacementConstraintType::DistinctInstance => Constraint::DistinctInstance,
                PlacementConstraintType::MemberOf => {
                    let text = c.expression.as_deref().unwrap_or_default();
                    let expr = self
                        .parse(text)
                        .map_err(|e| Unpredictable(format!("service {name}: memberOf expression {text:?}: {e}")))?;
                    Constraint::MemberOf {
                        text: Arc::from(text),
                        expr,
                    }
                }
                PlacementConstraintType::Other(t) => {
                    return Err(Unpredictable(format!(
                        "service {name}: constraint type {t:?} is not modelled"
                    )))
                }
            });
        }
        let daemon = service.scheduling_strategy == SchedulingStrategy::Daemon;
        let rules = if daemon {
            Vec::new()
        } else {
            strategy::chain(&service.placement_strategy)?
        };
        let mut request = TaskRequest {
            group: format!("service:{name}"),
            footprint,
            constraints,
            rules,
            daemon,
            static_ok: Arc::from([]),
            static_failed: Arc::from([]),
        };
        self.precompute_static(&mut request);
        Ok(request)
    }

    /// A memberOf expression, parsed once per index: services share a handful of them.
    fn parse(&self, text: &str) -> Result<cql::Expr, String> {
        let mut parsed = self.parsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = parsed.get(text) {
            return known.clone();
        }
        let result = cql::parse(text).map_err(|e| e.to_string());
        parsed.insert(text.to_owned(), result.clone());
        result
    }

    /// Evaluates once, per instance, the memberOf constraints that do not depend on which tasks run where; a request
    /// with the same static constraints as one before shares its verdicts.
    fn precompute_static(&self, request: &mut TaskRequest) {
        let key: StaticKey = request
            .constraints
            .iter()
            .enumerate()
            .filter_map(|(k, c)| match c {
                Constraint::MemberOf { text, expr } if expr.is_static() => Some((k, text.clone())),
                _ => None,
            })
            .collect();
        let mut statics = self.statics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ok, failed) = statics
            .entry(key)
            .or_insert_with(|| {
                let failed: Vec<Option<usize>> = self
                    .cluster
                    .instances()
                    .iter()
                    .map(|instance| {
                        let facts = Facts {
                            instance,
                            running: instance.running_tasks_count,
                            groups: &[],
                        };
                        request.constraints.iter().position(|c| match c {
                            Constraint::MemberOf { expr, .. } if expr.is_static() => !expr.eval(&facts),
                            _ => false,
                        })
                    })
                    .collect();
                let ok: Vec<bool> = failed.iter().map(Option::is_none).collect();
                (Arc::from(ok), Arc::from(failed))
            })
            .clone();
        request.static_ok = ok;
        request.static_failed = failed;
    }

    /// Where one new task of the request would go, with the overlay applied. Collects a reason for every instance
    /// ruled out.
    pub fn place(&self, request: &TaskRequest, overlay: &Overlay) -> Placement {
        self.run(request, overlay, true)
    }

    /// Like [`PlacementIndex::place`] but without the reasons: the planner's hot path.
    pub fn candidates(&self, request: &TaskRequest, overlay: &Overlay) -> Placement {
        self.run(request, overlay, false)
    }

    fn run(&self, request: &TaskRequest, overlay: &Overlay, explain: bool) -> Placement {
        let n = self.cluster.instances().len();
        assert_eq!(
            request.static_ok.len(),
            n,
            "a TaskRequest is only valid for the index that built it"
        );
        let touched = overlay.touched();
        let adjusted = self.adjust(&touched, overlay);
        // Instances the fast path must leave to `judge`: changed or excluded by the overlay.
        let mut special: Vec<InstanceIdx> = touched
            .iter()
            .copied()
            .chain(overlay.excluded.iter().map(|e| e.instance))
            .collect();
        special.sort_unstable();
        special.dedup();
        let group = self.group_counts(&request.group, overlay);
        let mut dense = vec![0u32; n];
        for &(i, c) in &group {
            dense[i.get()] = c;
        }
        let dynamic = request
            .constraints
            .iter()
            .any(|c| matches!(c, Constraint::MemberOf { expr, .. } if !expr.is_static()));
        let one_per_instance = request.daemon
            || request
                .constraints
                .iter()
                .any(|c| matches!(c, Constraint::DistinctInstance));
        let fp = &request.footprint;
        let (need_cpu, need_memory, need_gpus) = (i64::from(fp.cpu), i64::from(fp.memory), i64::from(fp.gpus));
        let needs_ports = !fp.tcp_ports.is_empty() || !fp.udp_ports.is_empty();

        let mut out = Placement::default();
        // Indexing several per-instance columns by the same position reads clearer than zipping six iterators.
        #[allow(clippy::needless_range_loop)]
        for i in 0..n {
            let at = InstanceIdx(i);
            let is_special = !special.is_empty() && special.binary_search(&at).is_ok();
            if !explain && !is_special {
                // IMPORTANT: the fast path must reject exactly what `judge` rejects; it only skips the reasons.
                // The property test `explaining_changes_nothing_but_the_reasons` holds the two together.
                let passes = self.open[i]
                    && self.cpu[i] >= need_cpu
                    && self.memory[i] >= need_memory
                    && self.gpus[i] >= need_gpus
                    && request.static_ok[i]
                    && !(one_per_instance && dense[i] > 0);
                if !passes {
                    continue;
                }
                if !needs_ports && !dynamic {
                    out.feasible.push(at);
                    continue;
                }
            }
            let adj = if is_special {
                touched.binary_search(&at).ok().map(|k| &adjusted[k].1)
            } else {
                None
            };
            match self.judge(at, request, overlay, adj, dense[i], dynamic) {
                None => out.feasible.push(at),
                Some(r) if explain => out.rejected.push((at, r)),
                Some(_) => {}
            }
        }
        let scores = QueryScores {
            index: self,
            touched: &touched,
            adjusted: &adjusted,
            dense: &dense,
            group: &group,
        };
        out.candidates = if request.daemon {
            out.feasible.clone()
        } else {
            strategy::candidates(&request.rules, &out.feasible, &scores)
        };
        out
    }

    /// The first reason instance `at` cannot take the task, or `None` when it can.
    fn judge(
        &self,
        at: InstanceIdx,
        request: &TaskRequest,
        overlay: &Overlay,
        adj: Option<&Adjusted>,
        group_count: u32,
        dynamic: bool,
    ) -> Option<Rejection> {
        let i = at.get();
        if let Some(r) = &self.ineligible[i] {
            return Some(r.clone());
        }
        if let Some(e) = overlay.excluded.iter().find(|e| e.instance == at) {
            return Some(Rejection::Excluded(e.reason.clone()));
        }
        let capacity = match adj {
            Some(a) => Some(&a.capacity),
            None => self.capacity[i].as_ref(),
        };
        let Some(capacity) = capacity else {
            return Some(Rejection::NoCapacityReported);
        };
        if let Some(m) = capacity.misfit(&request.footprint) {
            return Some(Rejection::Resources(m));
        }
        if !request.static_ok[i] {
            if let Some(Constraint::MemberOf { text, .. }) = request.static_failed[i].map(|k| &request.constraints[k]) {
                return Some(Rejection::MemberOf(text.clone()));
            }
        }
        if request.daemon && group_count > 0 {
            return Some(Rejection::DaemonPresent(request.group.clone()));
        }
        for c in &request.constraints {
            match c {
                Constraint::DistinctInstance if group_count > 0 => {
                    return Some(Rejection::DistinctInstance(request.group.clone()));
                }
                Constraint::MemberOf { text, expr } if dynamic && !expr.is_static() => {
                    let groups = self.groups_on(at, overlay);
                    let instance = self.cluster.instance_at(at);
                    let facts = Facts {
                        instance,
                        running: adj.map_or(instance.running_tasks_count, |a| a.running),
                        groups: &groups,
                    };
                    if !expr.eval(&facts) {
                        return Some(Rejection::MemberOf(text.clone()));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Capacity and running count of an instance the overlay touches.
    /// The capacity and task count of every touched instance (sorted) with the overlay applied, in one pass over
    /// the overlay.
    fn adjust(&self, touched: &[InstanceIdx], overlay: &Overlay) -> Vec<(InstanceIdx, Adjusted)> {
        let mut capacity: Vec<Capacity> = touched
            .iter()
            .map(|&i| self.capacity[i.get()].clone().unwrap_or_default())
            .collect();
        let mut running: Vec<i64> = touched
            .iter()
            .map(|&i| i64::from(self.cluster.instance_at(i).running_tasks_count))
            .collect();
        for s in &overlay.stopped {
            if let Ok(k) = touched.binary_search(&s.instance) {
                capacity[k].release(&s.footprint);
                running[k] -= 1;
            }
        }
        for s in &overlay.started {
            if let Ok(k) = touched.binary_search(&s.instance) {
                capacity[k].reserve(&s.footprint);
                running[k] += 1;
            }
        }
        touched
            .iter()
            .zip(capacity.into_iter().zip(running))
            .map(|(&i, (capacity, running))| {
                let running = u32::try_from(running.max(0)).unwrap_or(0);
                (i, Adjusted { capacity, running })
            })
            .collect()
    }

    /// Tasks of `group` per instance, with the overlay applied, sorted by instance.
    fn group_counts(&self, group: &str, overlay: &Overlay) -> Vec<(InstanceIdx, u32)> {
        let mut counts: Vec<(InstanceIdx, u32)> = self.groups.get(group).cloned().unwrap_or_default();
        let mut bump = |i: InstanceIdx, up: bool| match counts.binary_search_by_key(&i, |(x, _)| *x) {
            Ok(k) if up => counts[k].1 += 1,
            Ok(k) => counts[k].1 = counts[k].1.saturating_sub(1),
            Err(k) if up => counts.insert(k, (i, 1)),
            Err(_) => {}
        };
        for s in &overlay.stopped {
            if s.group == group {
                bump(s.instance, false);
            }
        }
        for s in &overlay.started {
            if s.group == group {
                bump(s.instance, true);
            }
        }
        counts.retain(|(_, c)| *c > 0);
        counts
    }

    /// The groups of the tasks on an instance, with the overlay applied (for `task:group` expressions).
    fn groups_on<'a>(&'a self, i: InstanceIdx, overlay: &'a Overlay) -> Vec<&'a str> {
        let mut groups: Vec<&str> = self
            .cluster
            .task_indexes_on(i)
            .iter()
            .filter(|&&t| !overlay.is_stopped(t))
            .filter_map(|&t| counted_group(self.cluster.task_at(t)))
            .collect();
        groups.extend(
            overlay
                .started
                .iter()
                .filter(|s| s.instance == i)
                .map(|s| s.group.as_str()),
        );
        groups
    }
}

/// The group a task counts in for distinctInstance, spread and `task:group`: ECS "looks at the desired status of
/// the tasks", so a task being stopped (desired STOPPED, last status still RUNNING) no longer counts
/// (docs/ecs.md: Placement, task-placement-constraints). Its resources stay reserved until it has stopped.
fn counted_group(task: &crate::model::Task) -> Option<&str> {
    (task.desired_status != crate::model::TaskStatus::Stopped)
        .then_some(task.group.as_deref())
        .flatten()
}

/// Whether an instance accepts placements at all (docs/ecs.md: Container instances: only ACTIVE with the agent connected).
fn eligibility(instance: &ContainerInstance) -> Option<Rejection> {
    if instance.status != InstanceStatus::Active {
        Some(Rejection::NotActive(instance.status.clone()))
    } else if !instance.agent_connected {
        Some(Rejection::AgentDisconnected)
    } else {
        None
    }
}

struct Adjusted {
    capacity: Capacity,
    running: u32,
}

struct QueryScores<'q, 'c> {
    index: &'q PlacementIndex<'c>,
    touched: &'q [InstanceIdx],
    adjusted: &'q [(InstanceIdx, Adjusted)],
    /// Tasks of the group per instance position.
    dense: &'q [u32],
    group: &'q [(InstanceIdx, u32)],
}

impl strategy::Scores for QueryScores<'_, '_> {
    fn remaining(&self, i: InstanceIdx, field: strategy::BinpackField) -> i64 {
        let capacity = match self.touched.binary_search(&i) {
            Ok(k) => Some(&self.adjusted[k].1.capacity),
            Err(_) => self.index.capacity[i.get()].as_ref(),
        };
        capacity.map_or(0, |c| match field {
            strategy::BinpackField::Cpu => c.cpu,
            strategy::BinpackField::Memory => c.memory,
        })
    }

    fn group_count(&self, i: InstanceIdx) -> u32 {
        self.dense[i.get()]
    }

    fn group_instances(&self) -> &[(InstanceIdx, u32)] {
        self.group
    }

    fn attribute_column(&self, name: &str) -> Cow<'_, strategy::Column> {
        match self.index.columns.get(name) {
            Some(c) => Cow::Borrowed(c),
            None => Cow::Owned(strategy::Column::new(self.index.cluster.instances(), name)),
        }
    }
}

/// The facts a cluster query expression reads about one instance.
pub struct Facts<'a> {
    pub instance: &'a ContainerInstance,
    /// `runningTasksCount`, with any overlay applied.
    pub running: u32,
    /// Groups of the tasks on the instance (for `task:group`), with any overlay applied.
    pub groups: &'a [&'a str],
}

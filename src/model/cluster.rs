//! [`Cluster`]: a snapshot with its indexes built once (tasks by instance, tasks by service, lookups by ARN and
//! name), and the inconsistencies found while building them.
//!
//! An inconsistency (a task on an instance the snapshot does not hold, a service task whose service is missing) is
//! not fatal to loading: a live observation can race a deregistration. But it is never ignored either: it is kept
//! as a typed [`Inconsistency`], shown by `inspect`, and the affected service is reported by
//! [`Cluster::is_service_consistent`] so the planner can refuse to move its tasks. Duplicate ARNs are fatal: an
//! index over them would silently drop one item.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use std::fmt;

use super::ecs::{ContainerInstance, Service, Task, TaskDefinition};
use super::enums::TaskStatus;
use super::snapshot::{Snapshot, Utilization};

/// A reference in the snapshot that points at nothing. The planner must not act on what it touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Inconsistency {
    /// A live task names a container instance the snapshot does not hold.
    TaskOnUnknownInstance {
        task_arn: String,
        container_instance_arn: String,
    },
    /// A live EC2 task has no container instance at all.
    TaskWithoutInstance { task_arn: String },
    /// A task's group is `service:<name>` but no such service is in the snapshot.
    TaskOfUnknownService { task_arn: String, service: String },
    /// Utilisation is given for an instance the snapshot does not hold.
    UtilizationOfUnknownInstance { container_instance_arn: String },
}

impl Inconsistency {
    /// The service this inconsistency makes unsafe to move, if any.
    fn service<'a>(&self, cluster: &'a Cluster) -> Option<&'a str> {
        match self {
            Inconsistency::TaskOnUnknownInstance { task_arn, .. } | Inconsistency::TaskWithoutInstance { task_arn } => {
                cluster.task(task_arn).and_then(Task::service_name)
            }
            Inconsistency::TaskOfUnknownService { .. } | Inconsistency::UtilizationOfUnknownInstance { .. } => None,
        }
    }
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inconsistency::TaskOnUnknownInstance {
                task_arn,
                container_instance_arn,
            } => write!(
                f,
                "task {task_arn} runs on container instance {container_instance_arn}, which the snapshot does not hold"
            ),
            Inconsistency::TaskWithoutInstance { task_arn } => {
                write!(f, "task {task_arn} is an EC2 task with no containerInstanceArn")
            }
            Inconsistency::TaskOfUnknownService { task_arn, service } => write!(
                f,
                "task {task_arn} belongs to service {service:?}, which the snapshot does not hold"
            ),
            Inconsistency::UtilizationOfUnknownInstance { container_instance_arn } => write!(
                f,
                "utilization is given for container instance {container_instance_arn}, which the snapshot does not hold"
            ),
        }
    }
}

/// An instance's position in [`Cluster::instances`] (snapshot order): how the placement engine and the planner
/// name an instance of the cluster they work on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceIdx(pub usize);

/// A task's position in [`Cluster::tasks`] (snapshot order, stopped tasks included).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskIdx(pub usize);

impl InstanceIdx {
    /// The position, to index a dense per-instance column.
    pub const fn get(self) -> usize {
        self.0
    }
}

impl TaskIdx {
    /// The position, to index a dense per-task column.
    pub const fn get(self) -> usize {
        self.0
    }
}

/// A fatal defect: the snapshot cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{section}[{index}]: duplicate {key} {value:?}, first seen at {section}[{first}]")]
pub struct DuplicateKey {
    pub section: &'static str,
    pub key: &'static str,
    pub value: String,
    pub index: usize,
    pub first: usize,
}

/// A snapshot with its indexes. Immutable: the twin and the planner build a new one (or an overlay) to change it.
/// The snapshot may be shared (the twin hands its published view to every cycle that observes it unchanged).
#[derive(Debug, Clone)]
pub struct Cluster {
    snapshot: Arc<Snapshot>,
    instance_by_arn: HashMap<String, usize>,
    task_by_arn: HashMap<String, usize>,
    service_by_name: HashMap<String, usize>,
    task_definition_by_arn: HashMap<String, usize>,
    /// Live tasks per instance, in snapshot order.
    tasks_by_instance: Vec<Vec<TaskIdx>>,
    /// Live tasks per service, in snapshot order.
    tasks_by_service: Vec<Vec<TaskIdx>>,
    inconsistencies: Vec<Inconsistency>,
    inconsistent_services: BTreeSet<String>,
}

impl Cluster {
    /// Indexes a snapshot, owned or shared. Fails only on duplicate keys; dangling references become
    /// [`Inconsistency`] values.
    pub fn new(snapshot: impl Into<Arc<Snapshot>>) -> Result<Cluster, DuplicateKey> {
        let snapshot: Arc<Snapshot> = snapshot.into();
        let instance_by_arn = index(
            &snapshot.container_instances,
            "containerInstances",
            "containerInstanceArn",
            |i| &i.container_instance_arn,
        )?;
        let task_by_arn = index(&snapshot.tasks, "tasks", "taskArn", |t| &t.task_arn)?;
        let service_by_name = index(&snapshot.services, "services", "serviceName", |s| &s.service_name)?;
        let task_definition_by_arn = index(
            &snapshot.task_definitions,
            "taskDefinitions",
            "taskDefinitionArn",
            |d| &d.task_definition_arn,
        )?;

        let mut tasks_by_instance = vec![Vec::new(); snapshot.container_instances.len()];
        let mut tasks_by_service = vec![Vec::new(); snapshot.services.len()];
        let mut inconsistencies = Vec::new();
        for (ti, task) in snapshot.tasks.iter().enumerate() {
            if !task.is_live() {
                continue;
            }
            match task.container_instance_arn.as_deref() {
                Some(arn) => match instance_by_arn.get(arn) {
                    Some(&ii) => tasks_by_instance[ii].push(TaskIdx(ti)),
                    None => inconsistencies.push(Inconsistency::TaskOnUnknownInstance {
                        task_arn: task.task_arn.clone(),
                        container_instance_arn: arn.to_owned(),
                    }),
                },
                // Fargate tasks have no instance: not ours to balance, but they still count for their service.
                None if task.launch_type.as_deref() == Some("FARGATE") => {}
                None => inconsistencies.push(Inconsistency::TaskWithoutInstance {
                    task_arn: task.task_arn.clone(),
                }),
            }
            if let Some(name) = task.service_name() {
                match service_by_name.get(name) {
                    Some(&si) => tasks_by_service[si].push(TaskIdx(ti)),
                    None => inconsistencies.push(Inconsistency::TaskOfUnknownService {
                        task_arn: task.task_arn.clone(),
                        service: name.to_owned(),
                    }),
                }
            }
        }
        for arn in snapshot.utilization.keys() {
            if !instance_by_arn.contains_key(arn) {
                inconsistencies.push(Inconsistency::UtilizationOfUnknownInstance {
                    container_instance_arn: arn.clone(),
                });
            }
        }

        let mut cluster = Cluster {
            snapshot,
            instance_by_arn,
            task_by_arn,
            service_by_name,
            task_definition_by_arn,
            tasks_by_instance,
            tasks_by_service,
            inconsistencies,
            inconsistent_services: BTreeSet::new(),
        };
        cluster.inconsistent_services = cluster
            .inconsistencies
            .iter()
            .filter_map(|i| i.service(&cluster).map(str::to_owned))
            .collect();
        Ok(cluster)
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The snapshot, copied only if it is shared.
    pub fn into_snapshot(self) -> Snapshot {
        Arc::unwrap_or_clone(self.snapshot)
    }

    pub fn name(&self) -> &str {
        &self.snapshot.cluster
    }

    pub fn instances(&self) -> &[ContainerInstance] {
        &self.snapshot.container_instances
    }

    pub fn services(&self) -> &[Service] {
        &self.snapshot.services
    }

    /// All tasks of the snapshot, stopped ones included; positions are stable task indexes.
    pub fn tasks(&self) -> &[Task] {
        &self.snapshot.tasks
    }

    /// Every instance's position, in snapshot order.
    pub fn instance_indexes(&self) -> impl Iterator<Item = InstanceIdx> {
        (0..self.snapshot.container_instances.len()).map(InstanceIdx)
    }

    /// The position of an instance in [`Cluster::instances`].
    pub fn instance_index(&self, arn: &str) -> Option<InstanceIdx> {
        self.instance_by_arn.get(arn).copied().map(InstanceIdx)
    }

    /// The position of a task in [`Cluster::tasks`].
    pub fn task_index(&self, arn: &str) -> Option<TaskIdx> {
        self.task_by_arn.get(arn).copied().map(TaskIdx)
    }

    /// The instance at a position. Panics when it is not a position of this cluster, as indexing does.
    pub fn instance_at(&self, instance: InstanceIdx) -> &ContainerInstance {
        &self.snapshot.container_instances[instance.0]
    }

    /// The task at a position. Panics when it is not a position of this cluster, as indexing does.
    pub fn task_at(&self, task: TaskIdx) -> &Task {
        &self.snapshot.tasks[task.0]
    }

    /// The live tasks on an instance, in snapshot order; empty for a position the cluster does not hold.
    pub fn task_indexes_on(&self, instance: InstanceIdx) -> &[TaskIdx] {
        self.tasks_by_instance.get(instance.0).map_or(&[], Vec::as_slice)
    }

    pub fn instance(&self, arn: &str) -> Option<&ContainerInstance> {
        self.instance_by_arn
            .get(arn)
            .map(|&i| &self.snapshot.container_instances[i])
    }

    pub fn task(&self, arn: &str) -> Option<&Task> {
        self.task_by_arn.get(arn).map(|&i| &self.snapshot.tasks[i])
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.service_by_name.get(name).map(|&i| &self.snapshot.services[i])
    }

    pub fn task_definition(&self, arn: &str) -> Option<&TaskDefinition> {
        self.task_definition_by_arn
            .get(arn)
            .map(|&i| &self.snapshot.task_definitions[i])
    }

    /// Live (not stopped) tasks on the instance, in snapshot order; empty for an unknown instance.
    pub fn tasks_on(&self, instance_arn: &str) -> impl Iterator<Item = &Task> + '_ {
        let ids = self
            .instance_by_arn
            .get(instance_arn)
            .map_or(&[][..], |&i| &self.tasks_by_instance[i][..]);
        ids.iter().map(|&t| self.task_at(t))
    }

    /// Live tasks of the service, in snapshot order; empty for an unknown service.
    /// How many tasks of the service run and are meant to go on running (ECS is not stopping them).
    pub fn running_of(&self, service_name: &str) -> usize {
        self.tasks_of(service_name)
            .filter(|t| t.desired_status != TaskStatus::Stopped && t.last_status == TaskStatus::Running)
            .count()
    }

    pub fn tasks_of(&self, service_name: &str) -> impl Iterator<Item = &Task> + '_ {
        let ids = self
            .service_by_name
            .get(service_name)
            .map_or(&[][..], |&s| &self.tasks_by_service[s][..]);
        ids.iter().map(|&t| self.task_at(t))
    }

    /// Observed utilisation of the instance; `None` is unknown.
    pub fn utilization(&self, instance_arn: &str) -> Option<&Utilization> {
        self.snapshot.utilization.get(instance_arn)
    }

    /// Everything that points at nothing, in discovery order.
    pub fn inconsistencies(&self) -> &[Inconsistency] {
        &self.inconsistencies
    }

    /// False when a task of this service points at something the snapshot does not hold: its true placement is
    /// unknown, so no move of the service can be predicted.
    pub fn is_service_consistent(&self, name: &str) -> bool {
        !self.inconsistent_services.contains(name)
    }
}

fn index<T>(
    items: &[T],
    section: &'static str,
    key: &'static str,
    key_of: impl Fn(&T) -> &String,
) -> Result<HashMap<String, usize>, DuplicateKey> {
    let mut map = HashMap::with_capacity_and_hasher(items.len(), Default::default());
    for (i, item) in items.iter().enumerate() {
        if let Some(first) = map.insert(key_of(item).clone(), i) {
            return Err(DuplicateKey {
                section,
                key,
                value: key_of(item).clone(),
                index: i,
                first,
            });
        }
    }
    Ok(map)
}

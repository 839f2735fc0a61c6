//! Per-instance load, normalised for instances of different sizes, and the balance score.
//!
//! - Reservation metrics (`cpu-unreserved`, `mem-unreserved`): reserved share of the instance's own registered
//!   resource, `(registered − remaining) / registered`.
//! - Utilisation metrics (`cpu-available`, `mem-available`): the observed fraction from Container Insights. Missing
//!   is **unknown**, never zero.
//! - `count`: tasks per unit of capacity, where an instance's capacity is its dominant-resource share: its
//!   registered CPU or memory relative to the mean scored instance, whichever is larger. An `m5.2xlarge` among
//!   `m5.xlarge`s has capacity 2 and is expected to run twice the tasks; a `c5.2xlarge` (CPU-heavy) among `m5.large`s
//!   is sized by its CPU. Daemon tasks are not counted: there is one on every instance and it cannot move.
//!
//! The score is the coefficient of variation (population standard deviation / mean) of the loads that are known,
//! over instances that can take tasks. It is scale-free, so one threshold reads the same for every metric. It is 0
//! when fewer than two loads are known or the mean is 0, and never NaN or infinite.

use serde::Serialize;

use crate::model::ecs::resource;
use crate::model::{Cluster, ContainerInstance, InstanceIdx, SchedulingStrategy, Task};
use crate::policy::Metric;

/// Load of one instance under one metric; `None` is unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceLoad {
    pub container_instance_arn: String,
    pub ec2_instance_id: Option<String>,
    /// Dominant-resource capacity relative to the mean scored instance (1.0 = average).
    pub capacity: f64,
    pub load: Option<f64>,
}

/// An instance and its load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAt {
    pub instance: InstanceIdx,
    pub load: f64,
}

/// Sorts `items` hottest first: by the load `key` gives, highest first, ties by the position or name it gives,
/// lowest first, so the order never depends on the input's. The one order in which the planner and the reference
/// visit hot instances, the tasks on them and the services with the most load on them.
pub fn sort_hottest_first<T, K: Ord>(items: &mut [T], key: impl Fn(&T) -> (f64, K)) {
    items.sort_by(|a, b| {
        let (load_a, tie_a) = key(a);
        let (load_b, tie_b) = key(b);
        load_b.total_cmp(&load_a).then(tie_a.cmp(&tie_b))
    });
}

/// Sorts instance loads hottest first, ties by instance position.
pub fn hottest_first(loads: &mut [LoadAt]) {
    sort_hottest_first(loads, |l| (l.load, l.instance));
}

/// What a task contributes to its instance's load, in the metric's own units before normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    /// For `count`: 1 task. For reservations: CPU units or MiB. For utilisation: estimated used CPU units or MiB.
    pub amount: f64,
}

/// Computes loads and scores for one metric over a fixed set of scored instances.
#[derive(Debug, Clone)]
pub struct LoadModel {
    pub metric: Metric,
    /// Per instance position: whether it is scored (can take tasks, not excluded, past its grace period).
    pub scored: Vec<bool>,
    /// Per instance position: the divisor that turns an amount into load (capacity for `count`, registered CPU or
    /// memory otherwise).
    divisor: Vec<f64>,
    /// Per instance position: relative capacity (for display and `count`).
    pub capacity: Vec<f64>,
    /// Per instance position: the current load, `None` when unknown or not scored.
    pub load: Vec<Option<f64>>,
}

/// Whether a task counts toward `count` load: live, desired to run, not a daemon's, and not leaving.
fn counts(cluster: &Cluster, task: &Task) -> bool {
    task.desired_status != crate::model::TaskStatus::Stopped
        && !task
            .service_name()
            .and_then(|s| cluster.service(s))
            .is_some_and(|s| s.scheduling_strategy == SchedulingStrategy::Daemon)
        && !leaving(cluster, task)
}

/// Whether a running task belongs to a deployment its service is replacing: a rollout (a redeploy of ours, or
/// anyone's deployment) stops it once the new tasks run (`docs/ecs.md`, UpdateService). The load is scored as
/// the cluster will settle, so moves made while a rollout plays out are judged against where it is going, not
/// against the old and the new tasks counted twice.
fn leaving(cluster: &Cluster, task: &Task) -> bool {
    let Some(service) = task.service_name().and_then(|s| cluster.service(s)) else {
        return false;
    };
    let Some(by) = task.started_by.as_deref() else {
        return false;
    };
    let primary = |d: &&crate::model::Deployment| d.status == crate::model::DeploymentStatus::Primary;
    service.deployments.len() > 1
        && !service.deployments.iter().filter(primary).any(|d| d.id == by)
        && service.deployments.iter().any(|d| d.id == by)
}

/// What the tasks on their way out of an instance still reserve there, in one resource: tasks stopping (their
/// reservation is released when they stop) and tasks a rollout is replacing (see [`leaving`]).
fn freed(cluster: &Cluster, instance_arn: &str, amount: fn(&Task) -> Option<u32>) -> f64 {
    use crate::model::TaskStatus;
    cluster
        .tasks_on(instance_arn)
        .filter(|t| t.last_status != TaskStatus::Stopped)
        .filter(|t| t.desired_status == TaskStatus::Stopped || leaving(cluster, t))
        .filter_map(amount)
        .map(f64::from)
        .sum()
}

fn registered(instance: &ContainerInstance, name: &str) -> f64 {
    instance.registered(name).and_then(|r| r.number()).unwrap_or(0.0)
}

fn remaining(instance: &ContainerInstance, name: &str) -> Option<f64> {
    instance.remaining(name).and_then(|r| r.number())
}

impl LoadModel {
    /// Loads for every instance marked in `scored`.
    pub fn new(cluster: &Cluster, metric: Metric, scored: Vec<bool>) -> LoadModel {
        let instances = cluster.instances();
        let mean = |name: &str| {
            let (sum, n) = instances
                .iter()
                .zip(&scored)
                .filter(|(_, s)| **s)
                .map(|(i, _)| registered(i, name))
                .fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
            if n > 0.0 && sum > 0.0 {
                sum / n
            } else {
                1.0
            }
        };
        let (mean_cpu, mean_mem) = (mean(resource::CPU), mean(resource::MEMORY));
        let capacity: Vec<f64> = instances
            .iter()
            .map(|i| (registered(i, resource::CPU) / mean_cpu).max(registered(i, resource::MEMORY) / mean_mem))
            .collect();
        let divisor: Vec<f64> = instances
            .iter()
            .zip(&capacity)
            .map(|(i, cap)| match metric {
                Metric::Count => *cap,
                Metric::CpuUnreserved | Metric::CpuAvailable => registered(i, resource::CPU),
                Metric::MemUnreserved | Metric::MemAvailable => registered(i, resource::MEMORY),
            })
            .collect();
        let load = instances
            .iter()
            .enumerate()
            .map(|(k, i)| {
                if !scored[k] || divisor[k].is_nan() || divisor[k] <= 0.0 {
                    return None;
                }
                let arn = &i.container_instance_arn;
                match metric {
                    Metric::Count => {
                        #[allow(clippy::cast_precision_loss)] // task counts are small
                        let n = cluster.tasks_on(arn).filter(|t| counts(cluster, t)).count() as f64;
                        Some(n / divisor[k])
                    }
                    Metric::CpuUnreserved => remaining(i, resource::CPU)
                        .map(|r| r + freed(cluster, arn, Task::cpu_units))
                        .map(|r| (divisor[k] - r) / divisor[k]),
                    Metric::MemUnreserved => remaining(i, resource::MEMORY)
                        .map(|r| r + freed(cluster, arn, Task::memory_mib))
                        .map(|r| (divisor[k] - r) / divisor[k]),
                    Metric::CpuAvailable => cluster.utilization(arn).and_then(|u| u.cpu),
                    Metric::MemAvailable => cluster.utilization(arn).and_then(|u| u.memory),
                }
                .filter(|v| v.is_finite())
            })
            .collect();
        LoadModel {
            metric,
            scored,
            divisor,
            capacity,
            load,
        }
    }

    /// Whether the instance is scored.
    pub fn is_scored(&self, instance: InstanceIdx) -> bool {
        self.scored[instance.get()]
    }

    /// The instance's current load; `None` when unknown or not scored.
    pub fn load_at(&self, instance: InstanceIdx) -> Option<f64> {
        self.load[instance.get()]
    }

    /// The instance's relative capacity.
    pub fn capacity_of(&self, instance: InstanceIdx) -> f64 {
        self.capacity[instance.get()]
    }

    /// What moving `task` (from the instance `source`) takes away from its source, in metric units.
    /// `None` when the contribution cannot be known (the task does not state its reservation, or the source's
    /// utilisation is unknown).
    pub fn contribution(&self, cluster: &Cluster, source: InstanceIdx, task: &Task) -> Option<Contribution> {
        let amount = match self.metric {
            Metric::Count => 1.0,
            Metric::CpuUnreserved => f64::from(task.cpu_units()?),
            Metric::MemUnreserved => f64::from(task.memory_mib()?),
            Metric::CpuAvailable | Metric::MemAvailable => {
                // Observed use is per instance, not per task: estimate the task's share as its share of the
                // instance's reservations (an estimate, said so in docs/design.md).
                let used = self.load_at(source)? * self.divisor[source.get()];
                let (name, mine) = if self.metric == Metric::CpuAvailable {
                    (resource::CPU, f64::from(task.cpu_units()?))
                } else {
                    (resource::MEMORY, f64::from(task.memory_mib()?))
                };
                let instance = cluster.instance_at(source);
                let reserved = registered(instance, name) - remaining(instance, name)?;
                if reserved > 0.0 {
                    used * (mine / reserved)
                } else {
                    return None;
                }
            }
        };
        Some(Contribution { amount })
    }

    /// The load change at instance `i` from adding (`sign` = 1) or removing (−1) a contribution.
    pub fn delta(&self, i: InstanceIdx, c: Contribution, sign: f64) -> f64 {
        let divisor = self.divisor[i.get()];
        if divisor > 0.0 {
            sign * c.amount / divisor
        } else {
            0.0
        }
    }

    /// The score of the current loads.
    pub fn score(&self) -> f64 {
        Stats::of(&self.load).score()
    }

    /// Instances with unknown load among the scored ones, and how many are scored.
    pub fn unknown_share(&self) -> (usize, usize) {
        let scored = self.scored.iter().filter(|s| **s).count();
        let unknown = self
            .scored
            .iter()
            .zip(&self.load)
            .filter(|(s, l)| **s && l.is_none())
            .count();
        (unknown, scored)
    }
}

/// Sum and sum of squares of the known loads: enough to rescore after a few loads change, in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    pub n: f64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Stats {
    pub fn of(loads: &[Option<f64>]) -> Stats {
        loads.iter().flatten().fold(Stats::default(), |s, &v| Stats {
            n: s.n + 1.0,
            sum: s.sum + v,
            sum_sq: s.sum_sq + v * v,
        })
    }

    /// Replaces one known load by another.
    pub fn replace(self, old: f64, new: f64) -> Stats {
        Stats {
            n: self.n,
            sum: self.sum - old + new,
            sum_sq: self.sum_sq - old * old + new * new,
        }
    }

    /// Population standard deviation / mean; 0 when undefined.
    pub fn score(&self) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        let mean = self.sum / self.n;
        if mean.is_nan() || mean <= 0.0 || !mean.is_finite() {
            return 0.0;
        }
        let variance = (self.sum_sq / self.n - mean * mean).max(0.0);
        let score = variance.sqrt() / mean;
        if score.is_finite() {
            score
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_the_coefficient_of_variation() {
        let s = Stats::of(&[Some(1.0), Some(3.0)]);
        assert!((s.score() - 0.5).abs() < 1e-12);
        assert_eq!(Stats::of(&[Some(2.0), Some(2.0), Some(2.0)]).score(), 0.0);
    }

    #[test]
    fn adversarial_loads_never_poison_the_score() {
        assert_eq!(Stats::of(&[]).score(), 0.0, "empty cluster");
        assert_eq!(Stats::of(&[Some(5.0)]).score(), 0.0, "one instance");
        assert_eq!(Stats::of(&[Some(0.0), Some(0.0)]).score(), 0.0, "all idle");
        assert_eq!(
            Stats::of(&[None, Some(1.0), None]).score(),
            0.0,
            "unknowns are not zeros"
        );
        assert!(Stats::of(&[Some(f64::MAX), Some(0.0)]).score().is_finite());
        assert!(Stats::of(&[Some(1e-300), Some(0.0)]).score().is_finite());
    }

    #[test]
    fn hottest_first_breaks_ties_by_position_whatever_the_input_order() {
        let at = |i, load| LoadAt {
            instance: InstanceIdx(i),
            load,
        };
        let mut v = vec![at(2, 1.0), at(3, 3.0), at(0, 3.0), at(1, 1.0), at(4, 2.0)];
        hottest_first(&mut v);
        let order: Vec<usize> = v.iter().map(|l| l.instance.get()).collect();
        assert_eq!(order, [0, 3, 4, 1, 2]);
    }

    #[test]
    fn replacing_a_load_matches_recomputing() {
        let loads = [Some(1.0), Some(4.0), Some(2.0)];
        let moved = Stats::of(&loads).replace(4.0, 3.0).replace(1.0, 2.0);
        let fresh = Stats::of(&[Some(2.0), Some(3.0), Some(2.0)]);
        assert!((moved.score() - fresh.score()).abs() < 1e-12);
    }
}

//! The one budget ledger: every limit on how much the controller disrupts, checked in one place (descheduler's
//! `EvictPod` shape). Budgets bound the **pace**; they never make a move impossible: a move bigger than a budget
//! is still admitted when it would be the only work of its kind (nothing of ours in flight, nothing else planned).
//!
//! - `maxUnavailable`: tasks held below their service's desired count by our moves, at once, over the cluster. A
//!   stop holds one task below desired until its replacement runs (ECS stops first, `docs/ecs.md` StopTask). A
//!   forced deployment or a drain is paced by ECS within the service's own minimum and maximum percent, so it can
//!   hold at most `desired − floor` tasks of each service it touches below desired (0 at a 100 % minimum).
//! - `perService`: tasks of one service this controller has **stopped** at once (deployments and drains are paced
//!   by ECS itself).
//! - `perHour`: tasks restarted in any rolling hour.
//! - `concurrentDrains`: instances this controller has DRAINING at once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::model::{Cluster, SchedulingStrategy, Service, TaskStatus};
use crate::policy::{Budgets, CountOrPercent, Policy};

use super::safety::{floor, SkipReason};
use super::view::{InFlight, LedgerView};

/// What one move costs against the budgets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cost {
    /// Tasks the move restarts (stopped and started again elsewhere, daemons included).
    pub restarted: u32,
    /// Tasks it can hold below their service's desired count at once.
    pub unavailable: u32,
    /// Stops per service (for `perService`).
    pub stops: Vec<String>,
    /// Whether it drains an instance.
    pub drain: bool,
}

/// How many tasks of `service` ECS may hold below desired while it replaces `moved` of them itself (a deployment
/// or a drain): never more than `desired − floor`.
pub fn paced_unavailable(service: &Service, moved: u32) -> u32 {
    moved.min(service.desired_count.saturating_sub(floor(service)))
}

/// The budgets of one cycle: what is in flight already, and what this cycle has planned so far.
#[derive(Debug, Clone)]
pub struct Ledger {
    limits: Budgets,
    /// Any of our actions in flight at all.
    busy: bool,
    unavailable: u32,
    hour: u32,
    drains: u32,
    /// Stops in flight or planned, per service, against each service's resolved `perService`.
    stops: HashMap<String, (u32, u32)>,
    /// Moves planned this cycle.
    planned: u32,
    /// Restarts planned this cycle.
    restarted: u32,
}

impl Ledger {
    pub fn new(limits: Budgets, cluster: &Cluster, view: &LedgerView, now: DateTime<Utc>) -> Ledger {
        let mut stops: HashMap<String, (u32, u32)> = HashMap::new();
        let mut unavailable = 0u32;
        for f in &view.in_flight {
            unavailable = unavailable.saturating_add(in_flight_unavailable(cluster, f));
            if let InFlight::StopTask { service, .. } = f {
                let limit = cluster
                    .service(service)
                    .map_or(0, |s| limits.per_service.resolve(s.desired_count));
                let e = stops.entry(service.clone()).or_insert((0, limit));
                e.0 += 1;
            }
        }
        Ledger {
            limits,
            // An unreadable ledger item may be a move in flight: a move bigger than a budget does not go alone.
            busy: !view.in_flight.is_empty() || !view.unreadable.is_empty(),
            unavailable,
            hour: view.restarted_in_last_hour(now),
            drains: view.drains_in_flight(),
            stops,
            planned: 0,
            restarted: 0,
        }
    }

    /// Whether a move of this cost fits, or the first budget it would break.
    pub fn admit(&self, cluster: &Cluster, cost: &Cost) -> Result<(), SkipReason> {
        for service in &cost.stops {
            let (used, limit) = self.stops_of(cluster, service);
            if used >= limit {
                return Err(SkipReason::ServiceBudget { limit });
            }
        }
        if cost.drain && self.drains >= self.limits.concurrent_drains {
            return Err(SkipReason::ConcurrentDrains {
                limit: self.limits.concurrent_drains,
            });
        }
        let alone = !self.busy && self.planned == 0;
        if self.unavailable.saturating_add(cost.unavailable) > self.limits.max_unavailable && !alone {
            return Err(SkipReason::Unavailable {
                limit: self.limits.max_unavailable,
            });
        }
        let hour_used = self.hour.saturating_add(self.restarted);
        if hour_used.saturating_add(cost.restarted) > self.limits.per_hour && hour_used > 0 {
            return Err(SkipReason::HourBudget {
                limit: self.limits.per_hour,
            });
        }
        Ok(())
    }

    /// Records a planned move.
    pub fn spend(&mut self, cluster: &Cluster, cost: &Cost) {
        for service in &cost.stops {
            let entry = self.stops_of(cluster, service);
            self.stops.insert(service.clone(), (entry.0 + 1, entry.1));
        }
        if cost.drain {
            self.drains += 1;
        }
        self.unavailable = self.unavailable.saturating_add(cost.unavailable);
        self.restarted = self.restarted.saturating_add(cost.restarted);
        self.planned += 1;
    }

    /// Stops of the service in flight or planned, and its resolved `perService`.
    fn stops_of(&self, cluster: &Cluster, service: &str) -> (u32, u32) {
        self.stops.get(service).copied().unwrap_or_else(|| {
            let limit = cluster
                .service(service)
                .map_or(0, |s| self.limits.per_service.resolve(s.desired_count));
            (0, limit)
        })
    }

    /// The hourly limit, when the last hour's moves and those planned have used it up: every move that restarts a
    /// task would be refused, and a move that restarts none changes nothing.
    pub fn hour_spent(&self) -> Option<u32> {
        let used = self.hour.saturating_add(self.restarted);
        (used >= self.limits.per_hour && used > 0).then_some(self.limits.per_hour)
    }

    /// Tasks restarted by the moves planned so far.
    pub fn restarted(&self) -> u32 {
        self.restarted
    }
}

/// What an action in flight still holds below desired, read from the current observation.
fn in_flight_unavailable(cluster: &Cluster, f: &InFlight) -> u32 {
    match f {
        InFlight::StopTask { .. } => 1,
        InFlight::Redeploy { service } => cluster
            .service(service)
            .map_or(0, |s| paced_unavailable(s, s.desired_count)),
        InFlight::Drain { container_instance_arn } => {
            let mut per_service: HashMap<&str, u32> = HashMap::new();
            for t in cluster.tasks_on(container_instance_arn) {
                if t.desired_status == TaskStatus::Stopped {
                    continue;
                }
                if let Some(s) = t.service_name() {
                    *per_service.entry(s).or_default() += 1;
                }
            }
            per_service
                .into_iter()
                .filter_map(|(name, n)| cluster.service(name).map(|s| (s, n)))
                .filter(|(s, _)| s.scheduling_strategy != SchedulingStrategy::Daemon)
                .map(|(s, n)| paced_unavailable(s, n))
                .sum()
        }
    }
}

/// A copy of `policy` without budgets: for judging where a way of planning leads, apart from its pace.
pub fn lifted(policy: &Policy) -> Policy {
    let mut p = policy.clone();
    p.budgets = Budgets {
        max_unavailable: u32::MAX,
        per_hour: u32::MAX,
        per_service: CountOrPercent::Percent(100),
        concurrent_drains: u32::MAX,
    };
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CountOrPercent;
    use crate::scenarios::builder::{instance, service, ClusterBuilder};

    fn limits(max_unavailable: u32, per_hour: u32) -> Budgets {
        Budgets {
            max_unavailable,
            per_hour,
            per_service: CountOrPercent::Count(1),
            concurrent_drains: 1,
        }
    }

    fn cluster() -> Cluster {
        ClusterBuilder::new("c")
            .instance(instance("a"))
            .service(service("web").deployment(50, 200))
            .tasks("web", "a", 4)
            .build()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn a_move_bigger_than_every_budget_goes_alone_when_nothing_is_in_flight() {
        let c = cluster();
        let mut b = Ledger::new(limits(1, 1), &c, &LedgerView::default(), now());
        let big = Cost {
            restarted: 50,
            unavailable: 25,
            ..Cost::default()
        };
        assert_eq!(b.admit(&c, &big), Ok(()));
        b.spend(&c, &big);
        let small = Cost {
            restarted: 1,
            unavailable: 1,
            ..Cost::default()
        };
        assert!(matches!(b.admit(&c, &small), Err(SkipReason::Unavailable { limit: 1 })));
    }

    #[test]
    fn work_in_flight_counts_against_max_unavailable() {
        let c = cluster();
        let view = LedgerView {
            in_flight: vec![InFlight::StopTask {
                task_arn: "t".into(),
                service: "web".into(),
            }],
            ..LedgerView::default()
        };
        let b = Ledger::new(limits(1, 100), &c, &view, now());
        let stop = Cost {
            restarted: 1,
            unavailable: 1,
            ..Cost::default()
        };
        assert!(matches!(b.admit(&c, &stop), Err(SkipReason::Unavailable { limit: 1 })));
    }

    #[test]
    fn the_hourly_budget_admits_an_oversized_move_only_in_an_unused_hour() {
        let c = cluster();
        let used = LedgerView {
            restarts: vec![(now() - chrono::Duration::minutes(10), 1)],
            ..LedgerView::default()
        };
        let big = Cost {
            restarted: 10,
            ..Cost::default()
        };
        let b = Ledger::new(limits(100, 5), &c, &used, now());
        assert!(matches!(b.admit(&c, &big), Err(SkipReason::HourBudget { limit: 5 })));
        let fresh = Ledger::new(limits(100, 5), &c, &LedgerView::default(), now());
        assert_eq!(fresh.admit(&c, &big), Ok(()));
    }

    #[test]
    fn per_service_counts_stops_only() {
        let c = cluster();
        let mut b = Ledger::new(limits(100, 100), &c, &LedgerView::default(), now());
        let stop = Cost {
            restarted: 1,
            unavailable: 1,
            stops: vec!["web".into()],
            drain: false,
        };
        b.spend(&c, &stop);
        assert!(matches!(
            b.admit(&c, &stop),
            Err(SkipReason::ServiceBudget { limit: 1 })
        ));
        let redeploy = Cost {
            restarted: 4,
            unavailable: 2,
            ..Cost::default()
        };
        assert_eq!(b.admit(&c, &redeploy), Ok(()));
    }

    #[test]
    fn a_deployment_holds_at_most_desired_minus_floor_below_desired() {
        let c = cluster();
        let web = c.service("web").unwrap();
        assert_eq!(paced_unavailable(web, 4), 2, "50 % of 4 may be down");
        let strict = ClusterBuilder::new("c")
            .instance(instance("a"))
            .service(service("pay").deployment(100, 200))
            .tasks("pay", "a", 4)
            .build();
        assert_eq!(paced_unavailable(strict.service("pay").unwrap(), 4), 0);
    }
}

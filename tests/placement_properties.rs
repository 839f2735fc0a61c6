//! Properties of the placement engine on random clusters, checked against an oracle that reads the snapshot
//! directly: every candidate is feasible, every feasible instance really has the resources, free ports and
//! constraints, every other instance has a reason, and spread(instanceId) never prefers a fuller instance.

use std::collections::BTreeSet;

use proptest::prelude::*;

use ecs_rebalancer::model::ecs::resource;
use ecs_rebalancer::model::{Cluster, InstanceIdx, InstanceStatus, Protocol, TaskIdx, TaskStatus};
use ecs_rebalancer::placement::{Constraint, Facts, Overlay, PlacementIndex};
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder, ServiceBuilder};

#[derive(Debug, Clone)]
struct InstanceSpec {
    cpu: i64,
    memory: i64,
    az: usize,
    kind: usize,
    status: usize,
    connected: bool,
}

#[derive(Debug, Clone)]
struct ServiceSpec {
    cpu: u32,
    memory: u32,
    port: Option<u16>,
    chain: usize,
    constraint: usize,
}

const AZS: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
const KINDS: [&str; 3] = ["m5.large", "c5.large", "r5.large"];

fn instance_spec() -> impl Strategy<Value = InstanceSpec> {
    (
        256i64..4096,
        512i64..8192,
        0..3usize,
        0..3usize,
        0..10usize,
        prop::bool::weighted(0.9),
    )
        .prop_map(|(cpu, memory, az, kind, status, connected)| InstanceSpec {
            cpu,
            memory,
            az,
            kind,
            status,
            connected,
        })
}

fn service_spec() -> impl Strategy<Value = ServiceSpec> {
    (
        prop::sample::select(vec![64u32, 128, 256, 512, 1024]),
        prop::sample::select(vec![128u32, 256, 512, 1024, 2048]),
        prop::option::weighted(0.3, prop::sample::select(vec![8080u16, 9090])),
        0..7usize,
        0..5usize,
    )
        .prop_map(|(cpu, memory, port, chain, constraint)| ServiceSpec {
            cpu,
            memory,
            port,
            chain,
            constraint,
        })
}

fn build_service(name: &str, spec: &ServiceSpec) -> ServiceBuilder {
    let mut s = service(name).cpu(spec.cpu).memory(spec.memory);
    if let Some(p) = spec.port {
        s = s.port(Some(p), 80, Protocol::Tcp);
    }
    s = match spec.chain {
        0 => s,
        1 => s.spread("instanceId"),
        2 => s.binpack("memory"),
        3 => s.binpack("cpu").spread("instanceId"),
        4 => s.spread("attribute:ecs.availability-zone").binpack("memory"),
        5 => s.random(),
        _ => s.spread("attribute:ecs.instance-type").spread("host"),
    };
    match spec.constraint {
        0 => s.distinct_instance(),
        1 => s.member_of("attribute:ecs.instance-type =~ m5.* or attribute:ecs.availability-zone == eu-west-1b"),
        2 => s.member_of("runningTasksCount < 4"),
        _ => s,
    }
}

fn cluster_strategy() -> impl Strategy<Value = (Cluster, Vec<usize>)> {
    (
        prop::collection::vec(instance_spec(), 1..10),
        prop::collection::vec(service_spec(), 1..4),
        prop::collection::vec((0..4usize, 0..10usize), 0..24),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    )
        .prop_map(|(instances, services, tasks, stops)| {
            let mut b = ClusterBuilder::new("prop");
            for (k, i) in instances.iter().enumerate() {
                let status = match i.status {
                    0 => InstanceStatus::Draining,
                    1 => InstanceStatus::Inactive,
                    _ => InstanceStatus::Active,
                };
                let mut ib = instance(&format!("{k}"))
                    .cpu(i.cpu)
                    .memory(i.memory)
                    .az(AZS[i.az])
                    .instance_type(KINDS[i.kind])
                    .status(status);
                if !i.connected {
                    ib = ib.disconnected();
                }
                b = b.instance(ib);
            }
            for (k, s) in services.iter().enumerate() {
                b = b.service(build_service(&format!("s{k}"), s));
            }
            for (s, i) in tasks {
                if s < services.len() && i < instances.len() {
                    b = b.tasks(&format!("s{s}"), &format!("{i}"), 1);
                }
            }
            let cluster = b.build();
            let n = cluster.tasks().len();
            let stops = if n == 0 {
                Vec::new()
            } else {
                stops.iter().map(|x| x.index(n)).collect()
            };
            (cluster, stops)
        })
}

/// The oracle: an instance's free resources and ports straight from the snapshot, minus what the overlay frees.
struct Oracle<'c> {
    cluster: &'c Cluster,
    stopped: BTreeSet<usize>,
}

impl Oracle<'_> {
    fn remaining(&self, i: usize, name: &str) -> i64 {
        let inst = &self.cluster.instances()[i];
        let base = inst.remaining(name).and_then(|r| r.integer_value).unwrap();
        let freed: i64 = self
            .stopped_on(i)
            .map(|t| {
                let t = &self.cluster.tasks()[t];
                i64::from(if name == resource::CPU {
                    t.cpu_units().unwrap()
                } else {
                    t.memory_mib().unwrap()
                })
            })
            .sum();
        base + freed
    }

    fn stopped_on(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let arn = self.cluster.instances()[i].container_instance_arn.clone();
        self.stopped
            .iter()
            .copied()
            .filter(move |&t| self.cluster.tasks()[t].container_instance_arn.as_deref() == Some(arn.as_str()))
    }

    fn port_in_use(&self, i: usize, port: u16) -> bool {
        let inst = &self.cluster.instances()[i];
        let listed = inst.ports_in_use(&Protocol::Tcp).contains(&port);
        let freed = self.stopped_on(i).any(|t| {
            self.cluster.tasks()[t]
                .containers
                .iter()
                .flat_map(|c| &c.network_bindings)
                .any(|b| b.host_port == Some(port))
        });
        listed && !freed
    }

    fn group_count(&self, i: usize, group: &str) -> usize {
        self.cluster
            .task_indexes_on(InstanceIdx(i))
            .iter()
            .filter(|t| !self.stopped.contains(&t.get()))
            .map(|&t| &self.cluster.tasks()[t.get()])
            .filter(|t| t.desired_status != TaskStatus::Stopped && t.group.as_deref() == Some(group))
            .count()
    }

    fn groups(&self, i: usize) -> Vec<&str> {
        self.cluster
            .task_indexes_on(InstanceIdx(i))
            .iter()
            .filter(|t| !self.stopped.contains(&t.get()))
            .map(|&t| &self.cluster.tasks()[t.get()])
            .filter(|t| t.desired_status != TaskStatus::Stopped)
            .filter_map(|t| t.group.as_deref())
            .collect()
    }

    fn running(&self, i: usize) -> u32 {
        self.cluster.instances()[i].running_tasks_count - u32::try_from(self.stopped_on(i).count()).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_candidate_satisfies_resources_ports_and_constraints((cluster, stops) in cluster_strategy()) {
        let index = PlacementIndex::new(&cluster);
        let mut overlay = Overlay::new();
        for &t in &stops {
            overlay.stop(&cluster, TaskIdx(t)).unwrap();
        }
        let oracle = Oracle { cluster: &cluster, stopped: stops.iter().copied().collect() };
        for svc in cluster.services() {
            let request = index.request_for_service(svc).unwrap();
            let p = index.place(&request, &overlay);
            let n = cluster.instances().len();

            let feasible: BTreeSet<InstanceIdx> = p.feasible.iter().copied().collect();
            let rejected: BTreeSet<InstanceIdx> = p.rejected.iter().map(|(i, _)| *i).collect();
            prop_assert!(feasible.is_disjoint(&rejected));
            prop_assert_eq!(feasible.len() + rejected.len(), n, "every instance is feasible or has a reason");
            prop_assert!(p.candidates.iter().all(|c| feasible.contains(c)), "candidates are feasible");
            prop_assert_eq!(p.candidates.is_empty(), p.feasible.is_empty());

            for &i in &p.feasible {
                let i = i.get();
                let inst = &cluster.instances()[i];
                prop_assert!(inst.status == InstanceStatus::Active && inst.agent_connected);
                prop_assert!(oracle.remaining(i, resource::CPU) >= i64::from(request.footprint.cpu));
                prop_assert!(oracle.remaining(i, resource::MEMORY) >= i64::from(request.footprint.memory));
                for &port in &request.footprint.tcp_ports {
                    prop_assert!(!oracle.port_in_use(i, port), "port {} in use on a feasible instance", port);
                }
                let groups = oracle.groups(i);
                let facts = Facts { instance: inst, running: oracle.running(i), groups: &groups };
                for c in &request.constraints {
                    match c {
                        Constraint::DistinctInstance => prop_assert_eq!(oracle.group_count(i, &request.group), 0),
                        Constraint::MemberOf { expr, text } => {
                            prop_assert!(expr.eval(&facts), "memberOf({}) false on a feasible instance", text);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn spread_instance_never_prefers_an_instance_holding_more_of_the_group((cluster, stops) in cluster_strategy()) {
        let index = PlacementIndex::new(&cluster);
        let mut overlay = Overlay::new();
        for &t in &stops {
            overlay.stop(&cluster, TaskIdx(t)).unwrap();
        }
        let oracle = Oracle { cluster: &cluster, stopped: stops.iter().copied().collect() };
        for svc in cluster.services() {
            let request = index.request_for_service(svc).unwrap();
            if request.rules.first() != Some(&ecs_rebalancer::placement::Rule::SpreadInstance) {
                continue;
            }
            let p = index.place(&request, &overlay);
            let fewest = p.feasible.iter().map(|&i| oracle.group_count(i.get(), &request.group)).min();
            for &c in &p.candidates {
                prop_assert_eq!(Some(oracle.group_count(c.get(), &request.group)), fewest);
            }
        }
    }

    #[test]
    fn explaining_changes_nothing_but_the_reasons((cluster, stops) in cluster_strategy()) {
        let index = PlacementIndex::new(&cluster);
        let mut overlay = Overlay::new();
        for &t in &stops {
            overlay.stop(&cluster, TaskIdx(t)).unwrap();
        }
        for svc in cluster.services() {
            let request = index.request_for_service(svc).unwrap();
            let explained = index.place(&request, &overlay);
            let fast = index.candidates(&request, &overlay);
            prop_assert_eq!(&explained.feasible, &fast.feasible);
            prop_assert_eq!(&explained.candidates, &fast.candidates);
            prop_assert!(fast.rejected.is_empty());
        }
    }
}

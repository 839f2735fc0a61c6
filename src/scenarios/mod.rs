//! Built-in scenarios: the `demo` cluster and policy, the clusters of the `simulate --compare-baselines` figures and
//! the generated clusters of the benchmarks, all written with [`builder`].

pub mod builder;

use std::path::Path;

use crate::model::{Cluster, Snapshot};
use crate::policy::{self, Policy};
use builder::{instance, service, ClusterBuilder, InstanceBuilder};

/// A cluster the morning after an instance replacement and a scale-out. `old-c` failed overnight: ECS restarted its
/// tasks on `old-a` and `old-b`, the two `m5.2xlarge` left, and its replacement `new-c` joined empty. The scale-out
/// added two `m5.xlarge`, also empty. Mixed sizes, a service pinned to `m5.2xlarge` with `distinctInstance`, a
/// singleton that must never go below one task, a binpack service, a daemon, and a standalone task.
pub fn demo_snapshot() -> Snapshot {
    let node = |id: &str, az: &str, kind: &str, registered: &str| {
        let (cpu, memory) = if kind == "m5.2xlarge" {
            (8192, 31552)
        } else {
            (4096, 15576)
        };
        instance(id)
            .cpu(cpu)
            .memory(memory)
            .az(az)
            .instance_type(kind)
            .registered_at(registered)
    };
    let (old, new) = ("2026-11-01T08:00:00Z", "2026-11-28T09:00:00Z");
    let mut b = ClusterBuilder::new("demo")
        .instance(node("old-a", "eu-west-1a", "m5.2xlarge", old))
        .instance(node("old-b", "eu-west-1b", "m5.2xlarge", old))
        .instance(node("new-c", "eu-west-1c", "m5.2xlarge", new))
        .instance(node("new-a", "eu-west-1a", "m5.xlarge", new))
        .instance(node("new-b", "eu-west-1b", "m5.xlarge", new))
        .service(
            service("web")
                .cpu(256)
                .memory(512)
                .spread("attribute:ecs.availability-zone")
                .spread("instanceId")
                .deployment(50, 200),
        )
        .service(service("api").cpu(256).memory(1024).deployment(50, 200))
        .service(
            service("worker")
                .cpu(512)
                .memory(2048)
                .binpack("memory")
                .deployment(50, 200),
        )
        .service(
            service("cache")
                .cpu(256)
                .memory(512)
                .member_of("attribute:ecs.instance-type == m5.2xlarge")
                .distinct_instance()
                .deployment(0, 100),
        )
        .service(service("checkout").cpu(256).memory(512).deployment(100, 200))
        .service(service("agent").cpu(64).memory(128).daemon());
    for id in ["old-a", "old-b"] {
        b = b
            .tasks("web", id, 6)
            .tasks("api", id, 5)
            .tasks("worker", id, 3)
            .tasks("cache", id, 1);
    }
    b = b
        .tasks("checkout", "old-a", 1)
        .standalone_task("report", "old-b", 256, 1024);
    for id in ["old-a", "old-b", "new-c", "new-a", "new-b"] {
        b = b.tasks("agent", id, 1);
    }
    let mut snapshot = b.snapshot();
    snapshot.captured_at = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc));
    snapshot
}

/// The demo's policy: even task counts per unit of capacity within 20 % of the mean; stops, redeploys and drains;
/// modest budgets; short cooldowns so the demo moves along.
pub const DEMO_POLICY: &str = "\
apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata:
  name: demo
  description: Even out task counts after a scale-out.
spec:
  clusters: [demo]
  metric: count
  threshold: {trigger: 0.30, target: 0.20}
  actions: [stop-tasks, redeploy-services, drain-instances]
  mode: enforce
  interval: 1m
  budgets: {maxUnavailable: 8, perHour: 120, perService: 50%, concurrentDrains: 1}
  cooldown: {instance: 1m, service: 1m, newInstance: 5m}
";

/// The demo policy, parsed.
///
/// # Panics
/// Never in a released build: the embedded policy is validated by the tests.
pub fn demo_policy() -> Policy {
    match policy::load_str(Path::new("<demo>"), DEMO_POLICY) {
        Ok(mut p) => p.remove(0),
        Err(e) => unreachable!("the built-in demo policy is invalid: {e}"),
    }
}

/// Instance `i` of a scale-out: the first `old` registered on the 1st of the month, the rest on the 28th; three
/// Availability Zones in turn.
fn scale_out_instance(i: usize, old: usize) -> InstanceBuilder {
    const AZS: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    let registered = if i < old {
        "2026-11-01T08:00:00Z"
    } else {
        "2026-11-28T09:00:00Z"
    };
    instance(&format!("{i:04}")).az(AZS[i % 3]).registered_at(registered)
}

/// `old` full instances and `new` empty ones across three AZs, and `services` services (a third each: AZ-then-
/// instance spread, instance spread, the ECS default) with `per_old` tasks on every `every`-th old instance.
pub fn scale_out(name: &str, old: usize, new: usize, services: usize, per_old: usize, every: usize) -> Snapshot {
    let mut b = ClusterBuilder::new(name);
    for i in 0..old + new {
        b = b.instance(scale_out_instance(i, old).cpu(8192).memory(32768));
    }
    for s in 0..services {
        let svc = service(&format!("svc-{s:03}")).cpu(128).memory(256).deployment(50, 200);
        b = b.service(match s % 3 {
            0 => svc.spread("attribute:ecs.availability-zone").spread("instanceId"),
            1 => svc.spread("instanceId"),
            _ => svc,
        });
    }
    for i in 0..old {
        for s in 0..services {
            if (i + s) % every == 0 {
                b = b.tasks(&format!("svc-{s:03}"), &format!("{i:04}"), per_old);
            }
        }
    }
    let mut snap = b.snapshot();
    snap.captured_at = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .ok()
        .map(|t| t.to_utc());
    snap
}

/// A scale-out onto bigger instances: `old` instances of 2 vCPU / 8 GiB carrying every service, then `new` of
/// 8 vCPU / 32 GiB, empty, across three AZs. `services` services spread by instance (a third also by AZ first),
/// one task on every old instance each. ECS's spread fills instances equally by task count, whatever their size.
pub fn mixed_sizes(name: &str, old: usize, new: usize, services: usize) -> Snapshot {
    let mut b = ClusterBuilder::new(name);
    for i in 0..old + new {
        let (cpu, memory, kind) = if i < old {
            (2048, 8192, "m5.large")
        } else {
            (8192, 32768, "m5.2xlarge")
        };
        b = b.instance(scale_out_instance(i, old).cpu(cpu).memory(memory).instance_type(kind));
    }
    for s in 0..services {
        let svc = service(&format!("svc-{s:03}")).cpu(128).memory(256).deployment(50, 200);
        b = b.service(if s % 3 == 0 {
            svc.spread("attribute:ecs.availability-zone").spread("instanceId")
        } else {
            svc.spread("instanceId")
        });
        for i in 0..old {
            b = b.tasks(&format!("svc-{s:03}"), &format!("{i:04}"), 1);
        }
    }
    stamp(b.snapshot())
}

/// [`scale_out`] with every service at ECS's default deployment configuration for rolling updates, minimum 100 %
/// and maximum 200 %: no task may be stopped first, so only start-before-stop moves (redeploys, drains) help.
pub fn strict_floors(name: &str, old: usize, new: usize, services: usize, per_old: usize, every: usize) -> Snapshot {
    let mut snap = scale_out(name, old, new, services, per_old, every);
    for s in &mut snap.services {
        if let Some(d) = s.deployment_configuration.as_mut() {
            d.minimum_healthy_percent = Some(100);
            d.maximum_percent = Some(200);
        }
    }
    snap
}

/// Constraints and static host ports: a scale-out of `old` full and `new` empty instances (half `c5` for compute,
/// half `r5` for memory, three AZs) with services pinned to one family by `memberOf`, services with
/// `distinctInstance` that bind static host port 8080 + k in host mode, and unconstrained spread services.
pub fn constrained(name: &str, old: usize, new: usize) -> Snapshot {
    let mut b = ClusterBuilder::new(name);
    for i in 0..old + new {
        let family = if i % 2 == 0 { "c5.2xlarge" } else { "r5.2xlarge" };
        b = b.instance(scale_out_instance(i, old).cpu(8192).memory(65536).instance_type(family));
    }
    for k in 0..4u16 {
        let pinned = service(&format!("compute-{k}"))
            .cpu(512)
            .memory(1024)
            .member_of("attribute:ecs.instance-type =~ c5.*")
            .spread("instanceId")
            .deployment(50, 200);
        let ported = service(&format!("edge-{k}"))
            .cpu(256)
            .memory(512)
            .network_mode(crate::model::NetworkMode::Host)
            .port(Some(8080 + k), 8080 + k, crate::model::Protocol::Tcp)
            .distinct_instance()
            .deployment(50, 200);
        let plain = service(&format!("web-{k}"))
            .cpu(256)
            .memory(512)
            .spread("attribute:ecs.availability-zone")
            .spread("instanceId")
            .deployment(50, 200);
        b = b.service(pinned).service(ported).service(plain);
    }
    for i in 0..old {
        let id = format!("{i:04}");
        for k in 0..4 {
            if i % 2 == 0 {
                b = b.tasks(&format!("compute-{k}"), &id, 2);
            }
            if (i + k) % 2 == 0 {
                b = b.tasks(&format!("edge-{k}"), &id, 1);
            }
            b = b.tasks(&format!("web-{k}"), &id, 1);
        }
    }
    stamp(b.snapshot())
}

/// A large cluster where each service runs on few instances: `old` full and `new` empty instances, `services`
/// services each with tasks on one in twenty old instances (5 %), two tasks each, spread by instance or by the
/// ECS default.
pub fn sparse(name: &str, old: usize, new: usize, services: usize) -> Snapshot {
    let mut b = ClusterBuilder::new(name);
    for i in 0..old + new {
        b = b.instance(scale_out_instance(i, old).cpu(8192).memory(32768));
    }
    for s in 0..services {
        let svc = service(&format!("svc-{s:03}")).cpu(128).memory(256).deployment(50, 200);
        b = b.service(if s % 2 == 0 { svc.spread("instanceId") } else { svc });
    }
    for i in 0..old {
        for s in 0..services {
            if (i + s) % 20 == 0 {
                b = b.tasks(&format!("svc-{s:03}"), &format!("{i:04}"), 2);
            }
        }
    }
    stamp(b.snapshot())
}

/// A deterministic cluster of `instances` instances across three AZs in three sizes, with `services` services and
/// about `tasks` tasks spread over them, for benchmarks and size tests: [`Generated`] with every instance in use and
/// no host ports (the cluster of the `plan`, `placement` and `twin` benches).
pub fn generated(instances: usize, services: usize, tasks: usize) -> Cluster {
    Generated::new(instances, services, tasks).build()
}

/// The one generator of large clusters (benches, `simulate` rehearsals at ECS's limit of 5,000 instances, the
/// `twin serve` load figures): instances in three sizes across three AZs; services with a fifth each spread by AZ
/// then instance, binpacked on memory, pinned by `memberOf` (and spread by instance), held to `distinctInstance`,
/// and on ECS's default; a tenth at `minimumHealthyPercent` 100. Optionally the last `empty` instances carry no task
/// (a scale-out the morning after), and half of the `distinctInstance` services bind a static host port in `host`
/// network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub instances: usize,
    pub services: usize,
    /// About this many tasks: `tasks / services` per service.
    pub tasks: usize,
    /// The last `empty` instances hold no task.
    pub empty: usize,
    /// Half of the `distinctInstance` services (every tenth service) bind host port `20000 + s` in `host` mode.
    pub host_ports: bool,
}

impl Generated {
    pub fn new(instances: usize, services: usize, tasks: usize) -> Generated {
        Generated {
            instances,
            services,
            tasks,
            empty: 0,
            host_ports: false,
        }
    }

    /// The rehearsal cluster of issue 17 and docs/benchmarks.md: `instances` instances, the last fifth of them new and
    /// empty, 20 tasks per instance in use on average, 50 tasks per service, host ports on.
    pub fn scale_out(instances: usize) -> Generated {
        Generated {
            instances,
            services: (instances * 2 / 5).max(1),
            tasks: instances * 20,
            empty: instances / 5,
            host_ports: true,
        }
    }

    pub fn build(self) -> Cluster {
        let sizes = [
            (2048, 7680, "m5.large"),
            (4096, 15576, "m5.xlarge"),
            (8192, 31552, "m5.2xlarge"),
        ];
        let azs = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
        let mut b = ClusterBuilder::new("generated");
        for i in 0..self.instances {
            let (cpu, mem, kind) = sizes[i % sizes.len()];
            b = b.instance(
                instance(&format!("{i:05}"))
                    .cpu(cpu * 4)
                    .memory(mem * 4)
                    .az(azs[(i / 3) % azs.len()])
                    .instance_type(kind),
            );
        }
        for s in 0..self.services {
            let svc = service(&format!("svc-{s:04}"))
                .cpu(32 + (s as u32 % 4) * 16)
                .memory(64 + (s as u32 % 8) * 32)
                .deployment(if s % 10 == 0 { 100 } else { 50 }, 200);
            let svc = match s % 5 {
                0 => svc.spread("attribute:ecs.availability-zone").spread("instanceId"),
                1 => svc.binpack("memory"),
                2 => svc
                    .member_of("attribute:ecs.instance-type =~ m5.*")
                    .spread("instanceId"),
                3 if self.host_ports && s % 10 == 3 => {
                    let port = 20_000 + (s % 40_000) as u16;
                    svc.network_mode(crate::model::NetworkMode::Host)
                        .port(Some(port), port, crate::model::Protocol::Tcp)
                        .distinct_instance()
                }
                3 => svc.distinct_instance(),
                _ => svc,
            };
            b = b.service(svc);
        }
        let used = self.instances.saturating_sub(self.empty).max(1);
        let per_service = self.tasks / self.services.max(1);
        for s in 0..self.services {
            for k in 0..per_service {
                // Deterministic scatter: consecutive tasks of a service on instances far apart.
                let i = (s * 7919 + k * 104_729) % used;
                b = b.tasks(&format!("svc-{s:04}"), &format!("{i:05}"), 1);
            }
        }
        b.build()
    }
}

fn stamp(mut snap: Snapshot) -> Snapshot {
    snap.captured_at = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .ok()
        .map(|t| t.to_utc());
    snap
}

//! The three moves the controller makes, as one type used end to end: the planner proposes a [`Move`]
//! ([`crate::plan::PlannedAction`]), the ledger records it ([`crate::ledger::ActionRecord`]), the controller carries
//! it out and settles it, and metrics count it by [`MoveKind`]. Every `match` over a move is exhaustive, so a new
//! kind cannot fall into another kind's branch.
//!
//! The kind names (`stop-task`, `redeploy-service`, `drain-instance`) are user-facing: the `plan` JSON, the
//! ledger's `kind` attribute, action ids, logs and metric labels. They are written once, in [`MoveKind::as_str`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use crate::model::{Cluster, DeploymentStatus};

/// What a move is, without what it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MoveKind {
    StopTask,
    RedeployService,
    DrainInstance,
}

impl MoveKind {
    pub const ALL: [MoveKind; 3] = [MoveKind::StopTask, MoveKind::RedeployService, MoveKind::DrainInstance];

    /// The kind's name wherever a person or another program reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::StopTask => "stop-task",
            MoveKind::RedeployService => "redeploy-service",
            MoveKind::DrainInstance => "drain-instance",
        }
    }

    /// The kind named `s`, if this version knows it.
    pub fn parse(s: &str) -> Option<MoveKind> {
        MoveKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for MoveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MoveKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One move and what it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Stop one task of a service; the service scheduler starts its replacement.
    StopTask {
        task_arn: String,
        service_name: String,
        /// The instance the task leaves.
        container_instance_arn: String,
    },
    /// Force a new deployment of a service: it starts each replacement before it stops an old task.
    RedeployService { service_name: String },
    /// Set an instance DRAINING until the tasks ECS moves off it are gone, then ACTIVE again.
    DrainInstance {
        container_instance_arn: String,
        /// The tasks the drain expects ECS to move (empty on records written before drains named them).
        moved_tasks: Vec<String>,
        /// Their services, in name order: the instance is set ACTIVE again only once each has its desired count
        /// running, so a replacement ECS starts after the old task stopped (no room above desired) is never placed
        /// back on it. Empty on records written before drains named them.
        moved_services: Vec<String>,
    },
}

impl Move {
    pub fn kind(&self) -> MoveKind {
        match self {
            Move::StopTask { .. } => MoveKind::StopTask,
            Move::RedeployService { .. } => MoveKind::RedeployService,
            Move::DrainInstance { .. } => MoveKind::DrainInstance,
        }
    }

    /// What the move acts on: the task ARN, the service name or the container instance ARN.
    pub fn target(&self) -> &str {
        match self {
            Move::StopTask { task_arn, .. } => task_arn,
            Move::RedeployService { service_name } => service_name,
            Move::DrainInstance {
                container_instance_arn, ..
            } => container_instance_arn,
        }
    }

    /// The task a stop stops.
    pub fn task_arn(&self) -> Option<&str> {
        match self {
            Move::StopTask { task_arn, .. } => Some(task_arn),
            Move::RedeployService { .. } | Move::DrainInstance { .. } => None,
        }
    }

    /// The service whose tasks a stop or a redeploy replaces.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Move::StopTask { service_name, .. } | Move::RedeployService { service_name } => Some(service_name),
            Move::DrainInstance { .. } => None,
        }
    }

    /// The instance a stopped task leaves, or the instance drained.
    pub fn container_instance_arn(&self) -> Option<&str> {
        match self {
            Move::StopTask {
                container_instance_arn, ..
            }
            | Move::DrainInstance {
                container_instance_arn, ..
            } => Some(container_instance_arn),
            Move::RedeployService { .. } => None,
        }
    }

    /// For a drain: the tasks it expects ECS to move. Empty for the other kinds.
    pub fn moved_tasks(&self) -> &[String] {
        match self {
            Move::DrainInstance { moved_tasks, .. } => moved_tasks,
            Move::StopTask { .. } | Move::RedeployService { .. } => &[],
        }
    }

    /// For a drain: the services of the tasks it expects ECS to move. Empty for the other kinds.
    pub fn moved_services(&self) -> &[String] {
        match self {
            Move::DrainInstance { moved_services, .. } => moved_services,
            Move::StopTask { .. } | Move::RedeployService { .. } => &[],
        }
    }

    /// The move's deterministic id on `cluster` as observed: the same move observed twice claims the same ledger
    /// record. It starts with the kind and the last part of the target (`ledger::Unreadable` reads the target back
    /// from a damaged item's id); a redeploy adds the service's primary deployment, a drain the instance's
    /// version, so the same move on a service or an instance that changed since is a new one.
    pub fn id(&self, cluster: &Cluster) -> String {
        match self {
            Move::StopTask { task_arn, .. } => Move::stop_id(task_arn),
            Move::RedeployService { service_name } => Move::redeploy_id(service_name, cluster),
            Move::DrainInstance {
                container_instance_arn, ..
            } => Move::drain_id(container_instance_arn, cluster),
        }
    }

    /// [`Move::id`] of the stop of `task_arn` (it depends on nothing else).
    pub fn stop_id(task_arn: &str) -> String {
        format!("{}:{}", MoveKind::StopTask, last_part(task_arn))
    }

    /// [`Move::id`] of a redeploy of `service` on `cluster`: it names the service's primary deployment.
    pub fn redeploy_id(service: &str, cluster: &Cluster) -> String {
        let deployment = cluster
            .service(service)
            .and_then(|s| s.deployments.iter().find(|d| d.status == DeploymentStatus::Primary))
            .map_or("", |d| last_part(&d.id));
        format!("{}:{service}:{deployment}", MoveKind::RedeployService)
    }

    /// [`Move::id`] of a drain of the instance `arn` on `cluster`: it names the instance's version.
    pub fn drain_id(arn: &str, cluster: &Cluster) -> String {
        let version = cluster.instance(arn).and_then(|i| i.version).unwrap_or(0);
        format!("{}:{}:{version}", MoveKind::DrainInstance, last_part(arn))
    }
}

/// An ARN's last `/`-separated part (a task id, an instance id, a deployment id).
fn last_part(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Some of a cluster's container instances, as a record keeps them: the instances themselves, or, when they are
/// more than half of those they were drawn from, the others (`all but`). A stop's replacement can tie across
/// nearly every instance of a 5,000-instance cluster; named either way, a set never names more than half of them,
/// which keeps an action record within DynamoDB's 400 KB item limit (docs/operations.md, "The ledger table").
///
/// Written as a JSON array when listed, and as `{"allBut": [...], "count": n}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "SetForm", into = "SetForm")]
pub struct InstanceSet {
    /// How many instances the set holds.
    len: u32,
    /// The members, or with `all_but` the instances drawn from that are not members; sorted. Shared: a controller
    /// reads every record of the cluster each cycle, and a landing can name thousands.
    named: Arc<[String]>,
    all_but: bool,
}

impl InstanceSet {
    /// `members` out of `from`, every instance they were drawn from (the members among them), named the shorter
    /// way.
    pub fn new<'a>(members: &[String], from: impl IntoIterator<Item = &'a str>) -> InstanceSet {
        let members_set: HashSet<&str> = members.iter().map(String::as_str).collect();
        let (mut drawn_from, mut others) = (0usize, Vec::new());
        for arn in from {
            drawn_from += 1;
            if !members_set.contains(arn) {
                others.push(arn.to_owned());
            }
        }
        let len = u32::try_from(members_set.len()).unwrap_or(u32::MAX);
        // Members absent from `from` can only be named.
        let all_known = members_set.len() + others.len() == drawn_from;
        if all_known && others.len() < members_set.len() {
            InstanceSet::all_but(len, others)
        } else {
            InstanceSet::listed(members.to_vec())
        }
    }

    /// Exactly `members`.
    pub fn listed(mut members: Vec<String>) -> InstanceSet {
        members.sort();
        members.dedup();
        InstanceSet {
            len: u32::try_from(members.len()).unwrap_or(u32::MAX),
            named: members.into(),
            all_but: false,
        }
    }

    /// Every instance drawn from but the `others`, `len` in all.
    pub fn all_but(len: u32, mut others: Vec<String>) -> InstanceSet {
        others.sort();
        others.dedup();
        InstanceSet {
            len,
            named: others.into(),
            all_but: true,
        }
    }

    /// Whether `arn` is a member, for an instance among those the set was drawn from (an `all but` set cannot
    /// tell an instance it never saw from a member).
    pub fn contains(&self, arn: &str) -> bool {
        self.named.binary_search_by(|n| n.as_str().cmp(arn)).is_ok() != self.all_but
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The instances named: the members, or the others when [`InstanceSet::is_all_but`].
    pub fn named(&self) -> &[String] {
        &self.named
    }

    pub fn is_all_but(&self) -> bool {
        self.all_but
    }

    /// The same set with each name rewritten (a ledger item stores names without their shared prefix).
    #[must_use]
    pub fn map_names(self, f: impl FnMut(String) -> String) -> InstanceSet {
        let named = self.named.iter().cloned().map(f).collect();
        if self.all_but {
            InstanceSet::all_but(self.len, named)
        } else {
            InstanceSet::listed(named)
        }
    }

    /// For a person: the members, or how many there are and which are left out; at most `shown` names, each
    /// through `name_of`.
    pub fn describe(&self, shown: usize, name_of: impl Fn(&str) -> String) -> String {
        let names = some_of(&self.named, shown, name_of);
        if self.all_but {
            format!("{} instances: all but {names}", self.len)
        } else {
            names
        }
    }
}

/// How many instances of a landing a person is shown (the plan, `once`, `status`, logs).
pub const LANDING_SHOWN: usize = 8;

/// At most `shown` of `names`, each through `name_of`, then how many there are in all: a landing can name thousands.
pub fn some_of(names: &[String], shown: usize, name_of: impl Fn(&str) -> String) -> String {
    let mut some: Vec<String> = names.iter().take(shown).map(|n| name_of(n)).collect();
    if names.len() > shown {
        some.push(format!("… ({} in all)", names.len()));
    }
    some.join(", ")
}

/// How an [`InstanceSet`] is written.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SetForm {
    Listed(Vec<String>),
    AllBut {
        #[serde(rename = "allBut")]
        all_but: Vec<String>,
        count: u32,
    },
}

impl From<SetForm> for InstanceSet {
    fn from(f: SetForm) -> InstanceSet {
        match f {
            SetForm::Listed(v) => InstanceSet::listed(v),
            SetForm::AllBut { all_but, count } => InstanceSet::all_but(count, all_but),
        }
    }
}

impl From<InstanceSet> for SetForm {
    fn from(s: InstanceSet) -> SetForm {
        if s.all_but {
            SetForm::AllBut {
                all_but: s.named.to_vec(),
                count: s.len,
            }
        } else {
            SetForm::Listed(s.named.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name_and_nothing_else_does() {
        for k in MoveKind::ALL {
            assert_eq!(MoveKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for unknown in ["", "stop-tasks", "Stop-Task", "drain", "stop-task "] {
            assert_eq!(MoveKind::parse(unknown), None, "{unknown:?}");
        }
    }

    fn names(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("ci-{i:04}")).collect()
    }

    #[test]
    fn a_set_of_most_of_the_cluster_names_the_others_and_answers_the_same() {
        let cluster = names(0..10);
        let from = || cluster.iter().map(String::as_str);
        let most = InstanceSet::new(&names(0..8), from());
        assert!(most.is_all_but());
        assert_eq!((most.len(), most.named()), (8, &names(8..10)[..]));
        let few = InstanceSet::new(&names(0..3), from());
        assert!(!few.is_all_but());
        assert_eq!(few.named(), &names(0..3)[..]);
        for (i, arn) in cluster.iter().enumerate() {
            assert_eq!(most.contains(arn), i < 8, "{arn}");
            assert_eq!(few.contains(arn), i < 3, "{arn}");
        }
        assert_eq!(InstanceSet::new(&[], from()), InstanceSet::default());
        let all = InstanceSet::new(&cluster, from());
        assert!(all.is_all_but() && all.named().is_empty() && all.len() == 10 && all.contains("ci-0004"));
    }

    #[test]
    fn a_member_the_cluster_did_not_list_keeps_the_set_listed() {
        let from = names(0..4);
        let members = vec![
            "ci-0000".to_owned(),
            "ci-0001".into(),
            "ci-0002".into(),
            "elsewhere".into(),
        ];
        let s = InstanceSet::new(&members, from.iter().map(String::as_str));
        assert!(!s.is_all_but() && s.contains("elsewhere") && !s.contains("ci-0003"));
    }

    #[test]
    fn both_forms_read_back_from_their_json() {
        let from = names(0..6);
        for members in [names(0..2), names(0..5)] {
            let s = InstanceSet::new(&members, from.iter().map(String::as_str));
            let json = serde_json::to_value(&s).unwrap();
            assert_eq!(json.is_array(), !s.is_all_but(), "{json}");
            assert_eq!(serde_json::from_value::<InstanceSet>(json).unwrap(), s);
        }
        let all_but: InstanceSet = serde_json::from_str(r#"{"allBut": ["b"], "count": 2}"#).unwrap();
        assert!(all_but.contains("a") && !all_but.contains("b") && all_but.len() == 2);
    }
}

//! The ledger: every move is recorded before it is made, so a crash, a restart or a second replica can neither lose
//! nor repeat it. The trait speaks in typed outcomes ([`Claim`]): "someone got there first" is a normal answer, not
//! an error. Two implementations pass one shared test suite (`tests/ledger_contract.rs`): [`memory::MemoryLedger`]
//! for the twin, `simulate` and tests, and [`dynamo::DynamoLedger`] for production.
//!
//! Action ids are deterministic (see `moves::Move::id`): the same move observed twice claims the same id.
//! States move forward only, each move a conditional write ([`ActionState::may_follow`]). A claim made under a
//! lease carries its [`Fence`] (holder and epoch), and is written only if the lease still names that holder and
//! epoch: a deposed leader that wakes up late cannot claim anything. The lease protocol itself is in [`lease`].
//!
//! An action item that cannot be read is an [`Unreadable`], never dropped ([`Ledger::read_actions`]): a record of a
//! move in flight that disappeared would make its target plannable again.

pub mod dynamo;
mod item;
pub mod lease;
pub mod memory;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::aws::call::Detail;
use crate::moves::{InstanceSet, Move, MoveKind};
use crate::plan::{Episode, LedgerView};

pub use item::{ItemError, Unreadable};

/// Where an action is in its life: `claimed → acting → done | failed | abandoned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionState {
    /// Recorded; not yet sent to ECS.
    Claimed,
    /// Sent to ECS; waiting for it to play out.
    Acting,
    /// Played out.
    Done,
    /// ECS refused it, or it did not play out in time.
    Failed,
    /// Given up before acting (the target changed under us).
    Abandoned,
}

impl ActionState {
    pub fn in_flight(self) -> bool {
        matches!(self, ActionState::Claimed | ActionState::Acting)
    }

    /// Whether a record in state `from` may move to `self`: claimed → acting → done | failed | abandoned, and
    /// claimed straight to an end. Ends are final.
    pub fn may_follow(self, from: ActionState) -> bool {
        match self {
            ActionState::Claimed => false,
            ActionState::Acting => from == ActionState::Claimed,
            ActionState::Done | ActionState::Failed | ActionState::Abandoned => from.in_flight(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Claimed => "claimed",
            ActionState::Acting => "acting",
            ActionState::Done => "done",
            ActionState::Failed => "failed",
            ActionState::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        [
            ActionState::Claimed,
            ActionState::Acting,
            ActionState::Done,
            ActionState::Failed,
            ActionState::Abandoned,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// The proof a lease holder carries into every claim; the epoch is the fencing token, raised by every takeover.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Fence {
    pub holder: String,
    pub epoch: u64,
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} epoch {}", self.holder, self.epoch)
    }
}

/// The lease item of a cluster, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    pub holder: String,
    pub epoch: u64,
    /// Changes with every write: what a follower watches, and what every write is conditioned on.
    pub version: String,
    /// How long the holder may act after a renewal, as the holder promised it.
    pub duration_ms: u64,
    /// Wall-clock time of the last write, for people (`status`); never used to decide.
    pub renewed_at: DateTime<Utc>,
    /// Given up on shutdown: a follower may take over at once.
    pub released: bool,
    /// The policy the holder acts under (absent on leases written before it was kept).
    pub policy: Option<PolicyRecord>,
}

/// The policy a leader acts under, as its lease records it: what `status` shows, and what a new leader compares
/// with its own before it acts (`run`). Stored as a map of named attributes; a missing field takes its default and
/// an unknown one is ignored, so replicas of different versions read each other's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyRecord {
    /// The git commit id, or `sha256:` and the hash of the files for a plain path.
    pub revision: String,
    /// The policy's `metadata.name`.
    pub name: String,
    /// Where it came from (`git+https://…?ref=…&path=…`, or a path); never a credential.
    pub source: String,
    /// When this replica applied it (its clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<DateTime<Utc>>,
    /// The last revision that was refused as invalid while this one stayed in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<RejectedRevision>,
}

/// A revision of the policy source that did not validate: the last good one stayed in force.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RejectedRevision {
    pub revision: String,
    /// Every error, `file:line:col: message`.
    pub errors: Vec<String>,
    pub at: Option<DateTime<Utc>>,
}

/// One move, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRecord {
    pub id: String,
    pub cluster: String,
    /// The move and what it acts on.
    pub mv: Move,
    /// The primary deployment of the move's service when it was claimed: a redeploy is done once another one has
    /// replaced it.
    pub deployment_before: Option<String>,
    pub state: ActionState,
    pub claimed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub reason: String,
    /// Every instance ECS could place the replacement(s) on, of those the cluster had at the claim.
    pub predicted_landing: InstanceSet,
    /// For a stop: the instances of `predicted_landing` where it pays off (its odds), named within those. Empty for
    /// the other kinds.
    pub improving_landing: InstanceSet,
    /// ECS's own clock at the claim: the newest `createdAt` of any task and `registeredAt` of any instance in the
    /// observation the claim was checked against (the Unix epoch when none had one). A task of the service created
    /// later did not exist at the claim, so it is a replacement; an instance registered later was not there to be
    /// predicted. Settling compares ECS's timestamps with this, never with `claimed_at`, which is this
    /// controller's clock (a twin or a skewed clock would make every replacement look old). `None` on records
    /// written before it was kept: their replacements are not named.
    pub seen_until: Option<DateTime<Utc>>,
    /// How much the planner expected this move to lower the score.
    pub predicted_gain: f64,
    pub tasks: u32,
    /// What really happened, once settled.
    pub outcome: Option<String>,
    /// The replica that claimed it and the lease epoch it held (empty and 0 without a lease).
    pub holder: String,
    pub epoch: u64,
    /// A nonce of the claim attempt: a claim that finds its own token already written is its own retry.
    pub token: String,
    /// The revision of the policy the move was planned under, and the policy's name (empty on records written
    /// before they were kept).
    pub policy_revision: String,
    pub policy_name: String,
}

#[cfg(test)]
impl ActionRecord {
    /// An acting stop of a `web` task with this landing, for unit tests.
    pub(crate) fn stop_for_tests(predicted_landing: InstanceSet, improving_landing: InstanceSet) -> ActionRecord {
        ActionRecord {
            id: "stop-task:t".into(),
            cluster: "c".into(),
            mv: Move::StopTask {
                task_arn: "t".into(),
                service_name: "web".into(),
                container_instance_arn: "hot".into(),
            },
            deployment_before: None,
            state: ActionState::Acting,
            claimed_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            reason: String::new(),
            predicted_landing,
            improving_landing,
            seen_until: None,
            predicted_gain: 0.1,
            tasks: 1,
            outcome: None,
            holder: String::new(),
            epoch: 0,
            token: String::new(),
            policy_revision: String::new(),
            policy_name: String::new(),
        }
    }
}

/// `status -o json`: the move's fields flat beside the rest, as the table stores them (`kind`, `target`,
/// `service`, `instance`, `improvingLanding`, `movedTasks`).
impl Serialize for ActionRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Json<'a> {
            id: &'a str,
            cluster: &'a str,
            kind: MoveKind,
            target: &'a str,
            service: Option<&'a str>,
            instance: Option<&'a str>,
            deployment_before: Option<&'a str>,
            state: ActionState,
            claimed_at: DateTime<Utc>,
            updated_at: DateTime<Utc>,
            reason: &'a str,
            predicted_landing: &'a InstanceSet,
            improving_landing: &'a InstanceSet,
            moved_tasks: &'a [String],
            moved_services: &'a [String],
            seen_until: Option<DateTime<Utc>>,
            predicted_gain: f64,
            tasks: u32,
            outcome: Option<&'a str>,
            holder: &'a str,
            epoch: u64,
            token: &'a str,
            policy_revision: &'a str,
            policy_name: &'a str,
        }
        Json {
            id: &self.id,
            cluster: &self.cluster,
            kind: self.mv.kind(),
            target: self.mv.target(),
            service: self.mv.service_name(),
            instance: self.mv.container_instance_arn(),
            deployment_before: self.deployment_before.as_deref(),
            state: self.state,
            claimed_at: self.claimed_at,
            updated_at: self.updated_at,
            reason: &self.reason,
            predicted_landing: &self.predicted_landing,
            improving_landing: &self.improving_landing,
            moved_tasks: self.mv.moved_tasks(),
            moved_services: self.mv.moved_services(),
            seen_until: self.seen_until,
            predicted_gain: self.predicted_gain,
            tasks: self.tasks,
            outcome: self.outcome.as_deref(),
            holder: &self.holder,
            epoch: self.epoch,
            token: &self.token,
            policy_revision: &self.policy_revision,
            policy_name: &self.policy_name,
        }
        .serialize(s)
    }
}

/// A cluster's action items as read: the records, and every item that cannot be read (never dropped).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionLog {
    pub records: Vec<ActionRecord>,
    pub unreadable: Vec<Unreadable>,
}

impl ActionLog {
    /// The records, or the first unreadable item as the error: for readers that must see every record or none.
    pub fn into_records(self) -> Result<Vec<ActionRecord>, LedgerError> {
        match self.unreadable.into_iter().next() {
            Some(u) => Err(LedgerError::Unreadable(Box::new(u))),
            None => Ok(self.records),
        }
    }
}

/// The planner's hysteresis as the ledger keeps it, one per cluster: once a cycle found the score above `trigger`,
/// rebalancing goes on until it is at or below `target`, across `once` runs and leader changes. Written under the
/// lease's fence, so a deposed leader cannot overwrite it. [`Episode`] stays the planner's input type; this is its
/// stored form, kept as JSON so it can grow: a missing field takes its default and an unknown one is ignored, so
/// replicas of different versions read each other's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EpisodeRecord {
    /// Rebalancing is under way.
    pub active: bool,
    /// When the cycle that started it ran (this controller's clock), for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
}

impl EpisodeRecord {
    /// What the planner reads.
    pub fn episode(&self) -> Episode {
        // IMPORTANT: fields the planner's `Episode` may gain take their defaults until they are stored here too.
        #[allow(clippy::needless_update)]
        Episode {
            active: self.active,
            ..Episode::default()
        }
    }

    /// The record after a cycle whose plan says rebalancing is (`active`) or is not under way, at `now`: an episode
    /// that goes on keeps the time it started.
    pub fn after(&self, active: bool, now: DateTime<Utc>) -> EpisodeRecord {
        EpisodeRecord {
            active,
            started_at: match (self.active, active) {
                (_, false) => None,
                (true, true) => self.started_at.or(Some(now)),
                (false, true) => Some(now),
            },
        }
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Recorded now; go ahead.
    Claimed,
    /// The same id is already recorded (our own earlier attempt, or another replica's): do not act again.
    AlreadyClaimed(Box<ActionRecord>),
}

/// What a cooldown applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CooldownTarget {
    Service(String),
    Instance(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger unavailable: {0}")]
    Unavailable(Detail),
    #[error("no action {0}")]
    NotFound(String),
    /// A claim under a lease that no longer names this holder and epoch: someone else leads now.
    #[error("fenced: the lease is no longer held by {holder} at epoch {epoch}")]
    Fenced { holder: String, epoch: u64 },
    /// The table is missing or not shaped as `init` makes it.
    #[error("ledger table: {0}")]
    Table(Detail),
    /// The AWS configuration is missing or wrong (Region, credentials, endpoint): nothing works until it is set.
    #[error(transparent)]
    Config(crate::aws::ConfigError),
    /// An item the ledger holds cannot be read; it names the item and why.
    #[error(transparent)]
    Unreadable(Box<Unreadable>),
    /// An action record whose item would be larger than DynamoDB allows: it is not claimed, so its move is not
    /// made.
    #[error(
        "the record of {id} would be an item of {bytes} bytes, above DynamoDB's limit of {} bytes: not claimed",
        item::ITEM_LIMIT
    )]
    TooLarge { id: String, bytes: usize },
    /// A record that cannot be written as an item (never expected: every field maps).
    #[error("cannot write {what} as a ledger item")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
}

impl LedgerError {
    pub fn label(&self) -> &'static str {
        match self {
            LedgerError::Unavailable(_) => "unavailable",
            LedgerError::NotFound(_) => "not_found",
            LedgerError::Fenced { .. } => "fenced",
            LedgerError::Table(_) => "table",
            LedgerError::Config(e) => e.label(),
            LedgerError::Unreadable(_) => "unreadable",
            LedgerError::TooLarge { .. } => "too_large",
            LedgerError::Encode { .. } => "encode",
        }
    }

    /// Whether the ledger cannot work until a person changes a setting (the AWS configuration, a missing table):
    /// retrying will not help.
    pub fn is_configuration(&self) -> bool {
        matches!(self, LedgerError::Table(_) | LedgerError::Config(_))
    }
}

/// The durable record of moves, cooldowns and the lease. Shared by the tasks of one process (`Sync`).
pub trait Ledger: Sync {
    /// Records a new action if its id is new (a conditional write). With a fence, only while the lease names that
    /// holder and epoch (one transaction), else [`LedgerError::Fenced`]. A retried claim of our own (same id,
    /// holder and epoch) answers `Claimed` again.
    fn claim(
        &self,
        record: ActionRecord,
        fence: Option<&Fence>,
    ) -> impl Future<Output = Result<Claim, LedgerError>> + Send;
    /// Moves an action to `state` with what happened, if `state` may follow its current one
    /// ([`ActionState::may_follow`], a conditional write). `false`: it had already moved on (another replica
    /// settled it), nothing written.
    fn update(
        &self,
        cluster: &str,
        id: &str,
        state: ActionState,
        outcome: Option<String>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, LedgerError>> + Send;
    /// Every action of the cluster still claimed or acting; [`LedgerError::Unreadable`] if an item cannot be read.
    fn in_flight(&self, cluster: &str) -> impl Future<Output = Result<Vec<ActionRecord>, LedgerError>> + Send;
    /// Actions claimed since `since`; [`LedgerError::Unreadable`] if an item cannot be read.
    fn since(
        &self,
        cluster: &str,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ActionRecord>, LedgerError>> + Send;
    /// Actions claimed since `since`, and every action item of the cluster that cannot be read, whenever it was
    /// claimed (its claim time may be what cannot be read). What the controller reads: one damaged item halts the
    /// moves it names, not the cluster. The default is for ledgers that store typed records, which have no
    /// unreadable items.
    fn read_actions(
        &self,
        cluster: &str,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<ActionLog, LedgerError>> + Send {
        async move {
            Ok(ActionLog {
                records: self.since(cluster, since).await?,
                unreadable: Vec::new(),
            })
        }
    }
    fn set_cooldown(
        &self,
        cluster: &str,
        target: CooldownTarget,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Cooldowns still running at `now`.
    fn cooldowns(
        &self,
        cluster: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(CooldownTarget, DateTime<Utc>)>, LedgerError>> + Send;
    /// The cluster's rebalancing episode, if one was ever written (a strongly consistent read).
    fn read_episode(&self, cluster: &str) -> impl Future<Output = Result<Option<EpisodeRecord>, LedgerError>> + Send;
    /// Writes the cluster's episode. With a fence, only while the lease names that holder and epoch (one
    /// transaction), else [`LedgerError::Fenced`] and nothing written.
    fn write_episode(
        &self,
        cluster: &str,
        episode: &EpisodeRecord,
        fence: Option<&Fence>,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// The cluster's lease item, if any (a strongly consistent read).
    fn read_lease(&self, cluster: &str) -> impl Future<Output = Result<Option<LeaseRecord>, LedgerError>> + Send;
    /// Writes the lease item if it is still at `expected_version` (`None`: if there is none). `false`: it changed
    /// meanwhile, nothing written.
    fn write_lease(
        &self,
        cluster: &str,
        lease: &LeaseRecord,
        expected_version: Option<&str>,
    ) -> impl Future<Output = Result<bool, LedgerError>> + Send;
}

impl CooldownTarget {
    /// `service#NAME` or `instance#ARN`: the key suffix and the form `status` shows.
    pub fn key(&self) -> String {
        match self {
            CooldownTarget::Service(s) => format!("service#{s}"),
            CooldownTarget::Instance(i) => format!("instance#{i}"),
        }
    }

    pub fn from_key(key: &str) -> Option<CooldownTarget> {
        let (kind, target) = key.split_once('#')?;
        match kind {
            "service" => Some(CooldownTarget::Service(target.to_owned())),
            "instance" => Some(CooldownTarget::Instance(target.to_owned())),
            _ => None,
        }
    }
}

/// Builds the planner's view of the ledger at `now`. An unreadable action item that may be in flight is handed on
/// as such: the planner leaves what it names alone.
pub async fn view<L: Ledger>(ledger: &L, cluster: &str, now: DateTime<Utc>) -> Result<LedgerView, LedgerError> {
    let log = ledger.read_actions(cluster, DateTime::<Utc>::MIN_UTC).await?;
    view_of(ledger, cluster, log, now).await
}

/// [`view`] over a log of the cluster's actions already read (a cycle reads it once, to settle and then to plan);
/// only the cooldowns are read here.
pub async fn view_of<L: Ledger>(
    ledger: &L,
    cluster: &str,
    log: ActionLog,
    now: DateTime<Utc>,
) -> Result<LedgerView, LedgerError> {
    use crate::plan::{InFlight, UnreadableRecord};
    let mut view = LedgerView::default();
    for (target, until) in ledger.cooldowns(cluster, now).await? {
        match target {
            CooldownTarget::Service(s) => view.service_cooldowns.push((s, until)),
            CooldownTarget::Instance(i) => view.instance_cooldowns.push((i, until)),
        }
    }
    // One read of the cluster's actions serves work in flight, the hourly budget and spent stops.
    let hour_ago = now - chrono::Duration::hours(1);
    for r in log.records {
        if r.state.in_flight() {
            view.in_flight.push(match &r.mv {
                Move::StopTask {
                    task_arn, service_name, ..
                } => InFlight::StopTask {
                    task_arn: task_arn.clone(),
                    service: service_name.clone(),
                },
                Move::RedeployService { service_name } => InFlight::Redeploy {
                    service: service_name.clone(),
                },
                Move::DrainInstance {
                    container_instance_arn, ..
                } => InFlight::Drain {
                    container_instance_arn: container_instance_arn.clone(),
                },
            });
        }
        if r.claimed_at > hour_ago && r.state != ActionState::Abandoned {
            view.restarts.push((r.claimed_at, r.tasks));
        }
        if matches!(r.state, ActionState::Failed | ActionState::Abandoned) {
            view.attempted.push(r.id.clone());
        }
    }
    view.unreadable = log
        .unreadable
        .into_iter()
        .filter(Unreadable::may_be_in_flight)
        .map(|u| UnreadableRecord {
            key: u.key,
            targets: u.targets,
        })
        .collect();
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-20T{h:02}:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn an_episode_record_reads_missing_fields_as_defaults_and_ignores_unknown_ones() {
        let read = |json: &str| serde_json::from_str::<EpisodeRecord>(json).unwrap();
        assert_eq!(read("{}"), EpisodeRecord::default());
        assert_eq!(
            read(r#"{"active": true, "bestScore": 0.4, "startedAt": "2026-11-20T10:00:00Z"}"#),
            EpisodeRecord {
                active: true,
                started_at: Some(at(10)),
            },
            "a newer version's fields are ignored"
        );
        let on = EpisodeRecord {
            active: true,
            started_at: Some(at(10)),
        };
        assert_eq!(read(&serde_json::to_string(&on).unwrap()), on);
        assert_eq!(
            serde_json::to_string(&EpisodeRecord::default()).unwrap(),
            r#"{"active":false}"#
        );
    }

    #[test]
    fn an_episode_keeps_its_start_while_it_goes_on() {
        let off = EpisodeRecord::default();
        let started = off.after(true, at(10));
        assert_eq!(started.started_at, Some(at(10)));
        assert!(started.episode().active);
        assert_eq!(
            started.after(true, at(11)),
            started,
            "going on: unchanged, nothing to write"
        );
        assert_eq!(started.after(false, at(12)), off);
        assert!(!off.episode().active);
    }
}

//! An action record as the table stores it: one flat item of named attributes (docs/operations.md, "The table"),
//! mapped by serde (`serde_dynamo` for DynamoDB's attribute values). The DynamoDB ledger reads and writes every
//! action through it, and the memory ledger reads the raw items a test puts in it the same way.
//!
//! Reading refuses what it does not know: a kind this version does not know, a stop without its service, an
//! attribute of the wrong type. Such an item is an [`Unreadable`], never dropped: a corrupt record of a move in
//! flight that disappeared would make its target plannable again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_dynamo::{AttributeValue, Item};

use super::{ActionRecord, ActionState, LedgerError};
use crate::moves::{InstanceSet, Move, MoveKind};

/// The attributes of an `action#<id>` item. Optional attributes are left out when empty, as they always were.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActionItem {
    #[serde(skip_deserializing)]
    pub pk: String,
    #[serde(skip_deserializing)]
    pub sk: String,
    id: String,
    cluster: String,
    kind: String,
    target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployment_before: Option<String>,
    state: ActionState,
    #[serde(with = "millis")]
    claimed_at: DateTime<Utc>,
    #[serde(default, with = "millis::option", skip_serializing_if = "Option::is_none")]
    seen_until: Option<DateTime<Utc>>,
    #[serde(with = "millis")]
    updated_at: DateTime<Utc>,
    #[serde(default)]
    reason: String,
    /// What every instance named in `predictedLanding` and `improvingLanding` begins with, written once (an ARN up
    /// to the instance id): a landing may name thousands.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    landing_prefix: String,
    #[serde(default)]
    predicted_landing: InstanceSet,
    #[serde(default, skip_serializing_if = "InstanceSet::is_empty")]
    improving_landing: InstanceSet,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    moved_tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    moved_services: Vec<String>,
    /// Left out when not finite: DynamoDB numbers have no NaN or infinity.
    #[serde(default, skip_serializing_if = "not_finite")]
    predicted_gain: f64,
    #[serde(default)]
    tasks: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    #[serde(default)]
    holder: String,
    #[serde(default)]
    epoch: u64,
    #[serde(default)]
    token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    policy_revision: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    policy_name: String,
}

/// DynamoDB's limit on the size of an item, attribute names and values together, in bytes.
pub const ITEM_LIMIT: usize = 400 * 1024;

/// A record's item, or a refusal when DynamoDB would refuse it: both ledgers claim only what the table can hold
/// (the DynamoDB ledger writes this item).
pub(crate) fn fitting_item(r: &ActionRecord) -> Result<Item, LedgerError> {
    let item: Item = serde_dynamo::to_item(ActionItem::of(r)).map_err(|source| LedgerError::Encode {
        what: "an action record",
        source,
    })?;
    let bytes = item.iter().map(|(name, v)| name.len() + size(v)).sum();
    if bytes > ITEM_LIMIT {
        return Err(LedgerError::TooLarge {
            id: r.id.clone(),
            bytes,
        });
    }
    Ok(item)
}

/// The bytes DynamoDB counts for a value, or a little more: strings and binaries by their length, a number by its
/// digits, 3 bytes for a list or map and 1 per element (AWS, "DynamoDB item sizes and formats").
fn size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + size(e)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, e)| 1 + k.len() + size(e)).sum::<usize>(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => 3 + v.iter().map(|e| 1 + e.len()).sum::<usize>(),
        AttributeValue::Bs(v) => 3 + v.iter().map(|e| 1 + e.len()).sum::<usize>(),
    }
}

/// What every name begins with, up to and including a `/` (empty when they share none).
fn shared_prefix<'a>(mut names: impl Iterator<Item = &'a String>) -> &'a str {
    let Some(first) = names.next() else {
        return "";
    };
    let mut common = first.as_str();
    for n in names {
        let same = common.bytes().zip(n.bytes()).take_while(|(a, b)| a == b).count();
        common = &common[..same];
    }
    common.rfind('/').map_or("", |slash| &first[..=slash])
}

fn not_finite(x: &f64) -> bool {
    !x.is_finite()
}

/// The partition key of a cluster's items.
pub(crate) fn pk(cluster: &str) -> String {
    format!("cluster#{cluster}")
}

/// The sort key of an action's item.
pub(crate) fn action_sk(id: &str) -> String {
    format!("action#{id}")
}

impl ActionItem {
    pub fn of(r: &ActionRecord) -> ActionItem {
        let prefix = shared_prefix(r.predicted_landing.named().iter().chain(r.improving_landing.named()));
        let strip = |n: String| n[prefix.len()..].to_owned();
        ActionItem {
            pk: pk(&r.cluster),
            sk: action_sk(&r.id),
            id: r.id.clone(),
            cluster: r.cluster.clone(),
            kind: r.mv.kind().as_str().to_owned(),
            target: r.mv.target().to_owned(),
            service: r.mv.service_name().map(str::to_owned),
            instance: r.mv.container_instance_arn().map(str::to_owned),
            deployment_before: r.deployment_before.clone(),
            state: r.state,
            claimed_at: r.claimed_at,
            seen_until: r.seen_until,
            updated_at: r.updated_at,
            reason: r.reason.clone(),
            landing_prefix: prefix.to_owned(),
            predicted_landing: r.predicted_landing.clone().map_names(strip),
            improving_landing: r.improving_landing.clone().map_names(strip),
            moved_tasks: r.mv.moved_tasks().to_vec(),
            moved_services: r.mv.moved_services().to_vec(),
            predicted_gain: r.predicted_gain,
            tasks: r.tasks,
            outcome: r.outcome.clone(),
            holder: r.holder.clone(),
            epoch: r.epoch,
            token: r.token.clone(),
            policy_revision: r.policy_revision.clone(),
            policy_name: r.policy_name.clone(),
        }
    }

    fn into_record(self) -> Result<ActionRecord, ItemError> {
        let kind = MoveKind::parse(&self.kind).ok_or_else(|| ItemError::UnknownKind(self.kind.clone()))?;
        // The id is `<kind>:<target>[:<more>]` (moves::Move::id) and is what a claim is fenced on: a record
        // whose kind or target says otherwise would be read as one move while its id stands for another.
        let mut named = self.id.split(':');
        let last = self.target.rsplit('/').next().unwrap_or(&self.target);
        if named.next() != Some(kind.as_str()) || named.next() != Some(last) {
            return Err(ItemError::NotItsTarget {
                move_named: format!("{kind}:{last}"),
                id: self.id,
            });
        }
        let needs =
            |value: Option<String>, attribute: &'static str| value.ok_or(ItemError::Missing { kind, attribute });
        let mv = match kind {
            MoveKind::StopTask => Move::StopTask {
                service_name: needs(self.service, "service")?,
                container_instance_arn: needs(self.instance, "instance")?,
                task_arn: self.target,
            },
            MoveKind::RedeployService => Move::RedeployService {
                service_name: self.target,
            },
            MoveKind::DrainInstance => Move::DrainInstance {
                container_instance_arn: self.target,
                moved_tasks: self.moved_tasks,
                moved_services: self.moved_services,
            },
        };
        Ok(ActionRecord {
            id: self.id,
            cluster: self.cluster,
            mv,
            deployment_before: self.deployment_before,
            state: self.state,
            claimed_at: self.claimed_at,
            updated_at: self.updated_at,
            reason: self.reason,
            predicted_landing: self
                .predicted_landing
                .map_names(|n| format!("{}{n}", self.landing_prefix)),
            improving_landing: self
                .improving_landing
                .map_names(|n| format!("{}{n}", self.landing_prefix)),
            seen_until: self.seen_until,
            predicted_gain: self.predicted_gain,
            tasks: self.tasks,
            outcome: self.outcome,
            holder: self.holder,
            epoch: self.epoch,
            token: self.token,
            policy_revision: self.policy_revision,
            policy_name: self.policy_name,
        })
    }
}

/// Reads one action item: its record, or what can be read of it (its key, what it names, its state) and why the
/// rest cannot.
pub(crate) fn read(item: Item) -> Result<ActionRecord, Unreadable> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    let sk = text("sk");
    let key = sk
        .clone()
        .or_else(|| text("id").map(|id| action_sk(&id)))
        .unwrap_or_else(|| action_sk("?"));
    let (target, state) = (text("target"), text("state").and_then(|s| ActionState::parse(&s)));
    let read = serde_dynamo::from_item::<_, ActionItem>(item)
        .map_err(ItemError::Attributes)
        // The ledger finds a record's item by its id (`update`, a claim's check): a record whose id is not its
        // item's would be settled and then missed, failing every cycle of the cluster. (Found by fuzzing: `id` and
        // `target` emptied by hand read as a stop of nothing, settled as done, and its update found no item.)
        .and_then(|i| match &sk {
            Some(sk) if *sk != action_sk(&i.id) => Err(ItemError::NotItsKey { id: i.id }),
            _ => Ok(i),
        })
        .and_then(ActionItem::into_record);
    read.map_err(|source| {
        // Ids are `<kind>:<target>[:<more>]` (moves::Move::id): the id names the target even when the item's
        // `target` is what is damaged.
        let named = key
            .strip_prefix("action#")
            .and_then(|id| id.split(':').nth(1))
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let mut targets: Vec<String> = target.into_iter().filter(|t| !t.is_empty()).chain(named).collect();
        targets.dedup();
        Unreadable {
            key,
            targets,
            state,
            source,
        }
    })
}

/// Why an item is not an action record this version can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    #[error("unknown kind {0:?}; this version knows {known}", known = known_kinds())]
    UnknownKind(String),
    #[error("a {kind} item needs the attribute `{attribute}`")]
    Missing { kind: MoveKind, attribute: &'static str },
    #[error("its attributes are not an action record")]
    Attributes(#[source] serde_dynamo::Error),
    /// Its `id` is not the one its key (`sk`) names.
    #[error("its id {id:?} is not the one its key names")]
    NotItsKey { id: String },
    /// Its `kind` or `target` is not the one its `id` names: `move_named` is `<kind>:<last part of the target>`.
    #[error("its kind and target ({move_named}) are not the ones its id {id:?} names")]
    NotItsTarget { id: String, move_named: String },
}

fn known_kinds() -> String {
    MoveKind::ALL.map(MoveKind::as_str).join(", ")
}

/// An action item that cannot be read. It is never dropped: what it names is left alone (it may be a move in
/// flight), an item that names nothing stops planning altogether, and `status` lists it until a person repairs or
/// deletes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger item {key} cannot be read")]
pub struct Unreadable {
    /// The item's sort key, `action#<id>`.
    pub key: String,
    /// What it names, as far as that can be read: its `target` attribute and the target in its id (an ARN, the
    /// last part of one, or a service name). Empty when neither can be read.
    pub targets: Vec<String>,
    /// Its state, when that can be read.
    pub state: Option<ActionState>,
    #[source]
    pub source: ItemError,
}

impl Unreadable {
    /// Whether it may be a move in flight: its state is not known to be final.
    pub fn may_be_in_flight(&self) -> bool {
        self.state.is_none_or(ActionState::in_flight)
    }

    /// Why it cannot be read: its cause and theirs, in one line.
    pub fn cause(&self) -> String {
        let mut out = self.source.to_string();
        let mut next = std::error::Error::source(&self.source);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }

    /// The error with its causes, in one line (for logs).
    pub fn describe(&self) -> String {
        format!("{self}: {}", self.cause())
    }
}

/// `status -o json`: the key, what it names, its state when known, and why it cannot be read, in one line.
impl Serialize for Unreadable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            key: &'a str,
            targets: &'a [String],
            state: Option<ActionState>,
            error: String,
        }
        Json {
            key: &self.key,
            targets: &self.targets,
            state: self.state,
            error: self.cause(),
        }
        .serialize(s)
    }
}

/// Timestamps as the table keeps them: RFC 3339 with milliseconds and `Z`, so they sort as strings and conditions
/// can compare them. Any RFC 3339 time reads.
pub(crate) mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn text(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time: {e}")))
    }

    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserializer, Serializer};

        // serde calls this only for `Some` (the field is skipped when `None`).
        #[allow(clippy::ref_option)]
        pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn stop() -> ActionRecord {
        ActionRecord {
            id: "stop-task:abc".into(),
            cluster: "prod".into(),
            mv: Move::StopTask {
                task_arn: "arn:aws:ecs:eu-west-1:1:task/prod/abc".into(),
                service_name: "web".into(),
                container_instance_arn: "arn:aws:ecs:eu-west-1:1:container-instance/prod/hot".into(),
            },
            deployment_before: Some("ecs-svc/1".into()),
            state: ActionState::Acting,
            claimed_at: at(0),
            updated_at: at(1),
            reason: "hot".into(),
            predicted_landing: InstanceSet::listed(vec!["cold".into(), "warm".into()]),
            improving_landing: InstanceSet::listed(vec!["cold".into()]),
            seen_until: Some(at(0)),
            predicted_gain: 0.125,
            tasks: 1,
            outcome: None,
            holder: "me".into(),
            epoch: 3,
            token: "t".into(),
            policy_revision: "0123456789abcdef0123456789abcdef01234567".into(),
            policy_name: "prod".into(),
        }
    }

    fn item(r: &ActionRecord) -> Item {
        serde_dynamo::to_item(ActionItem::of(r)).unwrap()
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn a_record_is_stored_with_the_attributes_the_table_documents() {
        let stored = item(&stop());
        let mut names: Vec<&str> = stored.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "claimedAt",
                "cluster",
                "deploymentBefore",
                "epoch",
                "holder",
                "id",
                "improvingLanding",
                "instance",
                "kind",
                "pk",
                "policyName",
                "policyRevision",
                "predictedGain",
                "predictedLanding",
                "reason",
                "seenUntil",
                "service",
                "sk",
                "state",
                "target",
                "tasks",
                "token",
                "updatedAt"
            ]
        );
        assert_eq!(stored["pk"], s("cluster#prod"));
        assert_eq!(stored["sk"], s("action#stop-task:abc"));
        assert_eq!(stored["kind"], s(MoveKind::StopTask.as_str()));
        assert_eq!(stored["state"], s("acting"));
        assert_eq!(
            stored["claimedAt"],
            s("2027-01-15T08:00:00.000Z"),
            "milliseconds and Z: they sort"
        );
        assert_eq!(stored["tasks"], AttributeValue::N("1".into()));
        assert_eq!(stored["epoch"], AttributeValue::N("3".into()));
        assert_eq!(stored["predictedGain"], AttributeValue::N("0.125".into()));
        assert_eq!(
            stored["predictedLanding"],
            AttributeValue::L(vec![s("cold"), s("warm")])
        );
        assert_eq!(read(stored).unwrap(), stop(), "and read back whole");
    }

    #[test]
    fn a_landing_across_most_of_the_cluster_names_the_others_without_their_shared_prefix() {
        let arn = |i: u32| format!("arn:aws:ecs:eu-west-1:1:container-instance/prod/{i:032x}");
        let cluster: Vec<String> = (0..5_000).map(arn).collect();
        let from = || cluster.iter().map(String::as_str);
        let predicted = InstanceSet::new(&cluster[..4_990], from());
        let improving = InstanceSet::new(&cluster[..3_000], cluster[..4_990].iter().map(String::as_str));
        let wide = ActionRecord {
            predicted_landing: predicted,
            improving_landing: improving,
            ..stop()
        };
        let stored = item(&wide);
        assert_eq!(
            stored["landingPrefix"],
            s("arn:aws:ecs:eu-west-1:1:container-instance/prod/")
        );
        let AttributeValue::M(landing) = &stored["predictedLanding"] else {
            panic!("{:?}", stored["predictedLanding"]);
        };
        assert_eq!(landing["count"], AttributeValue::N("4990".into()));
        assert_eq!(
            landing["allBut"],
            AttributeValue::L((4_990..5_000).map(|i| s(&format!("{i:032x}"))).collect())
        );
        let bytes: usize = stored.values().map(|v| format!("{v:?}").len()).sum();
        assert!(bytes < 100_000, "{bytes} bytes for a tie across 4,990 instances");
        assert_eq!(read(stored).unwrap(), wide, "and read back whole");
    }

    #[test]
    fn a_landing_stored_before_sets_were_named_either_way_reads_as_listed() {
        let mut stored = item(&stop());
        stored.insert("improvingLanding".into(), AttributeValue::L(vec![s("cold")]));
        stored.insert("predictedLanding".into(), AttributeValue::L(vec![s("warm"), s("cold")]));
        let back = read(stored).unwrap();
        assert_eq!(back.predicted_landing, stop().predicted_landing);
        assert!(back.improving_landing.contains("cold") && !back.improving_landing.is_all_but());
    }

    #[test]
    fn empty_optional_attributes_are_left_out_and_read_back_as_empty() {
        let drain = ActionRecord {
            id: "drain-instance:hot:4".into(),
            mv: Move::DrainInstance {
                container_instance_arn: "arn:aws:ecs:eu-west-1:1:container-instance/prod/hot".into(),
                moved_tasks: vec![],
                moved_services: vec![],
            },
            deployment_before: None,
            seen_until: None,
            predicted_gain: f64::NAN,
            improving_landing: InstanceSet::default(),
            ..stop()
        };
        let stored = item(&drain);
        for absent in [
            "service",
            "deploymentBefore",
            "seenUntil",
            "improvingLanding",
            "movedTasks",
            "outcome",
            "predictedGain",
        ] {
            assert!(!stored.contains_key(absent), "{absent}: {stored:?}");
        }
        assert_eq!(stored["instance"], stored["target"]);
        let back = read(stored).unwrap();
        assert_eq!(back.mv, drain.mv);
        assert_eq!(back.predicted_gain, 0.0, "a gain that was not stored reads as 0");
    }

    fn attribute_value() -> impl proptest::strategy::Strategy<Value = AttributeValue> {
        use proptest::prelude::*;
        prop_oneof![
            ".{0,12}".prop_map(AttributeValue::S),
            "[-0-9.eE+a-z]{0,8}".prop_map(AttributeValue::N),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            prop::collection::vec(".{0,6}".prop_map(AttributeValue::S), 0..3).prop_map(AttributeValue::L),
            Just(AttributeValue::M(std::collections::HashMap::new())),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// Items edited by hand: attributes removed, retyped or added. Reading one never panics; it gives a record
        /// that writes back to an item that reads the same, or an error naming the item (its `sk` when it has one).
        #[test]
        fn an_item_edited_by_hand_reads_as_a_record_or_an_error_naming_it(
            edits in proptest::collection::vec((0usize..40, 0u8..3, attribute_value()), 1..5),
        ) {
            let mut stored = item(&stop());
            let mut names: Vec<String> = stored.keys().cloned().collect();
            names.sort();
            names.push("extraAttribute".into());
            for (at, how, value) in edits {
                let name = names[at % names.len()].clone();
                if how == 0 {
                    stored.remove(&name);
                } else {
                    stored.insert(name, value);
                }
            }
            let sk = match stored.get("sk") {
                Some(AttributeValue::S(sk)) => Some(sk.clone()),
                _ => None,
            };
            match read(stored) {
                Ok(record) => proptest::prop_assert_eq!(read(item(&record)).unwrap(), record),
                Err(e) => {
                    proptest::prop_assert!(e.describe().starts_with("ledger item "), "{}", e.describe());
                    if let Some(sk) = sk {
                        proptest::prop_assert_eq!(e.key, sk);
                    }
                }
            }
        }
    }

    #[test]
    fn an_extra_attribute_is_ignored() {
        let mut stored = item(&stop());
        stored.insert("addedByHand".into(), s("note"));
        assert_eq!(read(stored).unwrap(), stop());
    }

    #[test]
    fn an_unknown_kind_is_refused_naming_the_item_and_the_kind() {
        let mut stored = item(&stop());
        stored.insert("kind".into(), s("stop-tsk"));
        let e = read(stored).unwrap_err();
        assert_eq!(e.key, "action#stop-task:abc");
        assert_eq!(e.source, ItemError::UnknownKind("stop-tsk".into()));
        assert_eq!(
            e.describe(),
            "ledger item action#stop-task:abc cannot be read: unknown kind \"stop-tsk\"; this version knows \
             stop-task, redeploy-service, drain-instance"
        );
        assert_eq!(
            e.targets,
            ["arn:aws:ecs:eu-west-1:1:task/prod/abc", "abc"],
            "what it names"
        );
        assert_eq!(e.state, Some(ActionState::Acting));
        assert!(e.may_be_in_flight());
    }

    #[test]
    fn an_item_whose_id_is_not_its_key_is_refused_naming_what_its_key_names() {
        let mut stored = item(&stop());
        stored.insert("id".into(), s(""));
        stored.insert("target".into(), s(""));
        let e = read(stored).unwrap_err();
        assert_eq!(e.source, ItemError::NotItsKey { id: String::new() });
        assert_eq!(
            e.describe(),
            "ledger item action#stop-task:abc cannot be read: its id \"\" is not the one its key names"
        );
        assert_eq!(e.targets, ["abc"], "the task its key names");
        assert!(e.may_be_in_flight());

        let mut stored = item(&stop());
        stored.insert("id".into(), s("stop-task:other"));
        assert!(matches!(read(stored).unwrap_err().source, ItemError::NotItsKey { .. }));
        let mut stored = item(&stop());
        stored.remove("sk");
        assert_eq!(
            read(stored).unwrap(),
            stop(),
            "an item without its key (a test's raw item) is read by its id"
        );
    }

    /// A kind or target edited by hand no longer matches the id the claim was fenced on: unreadable, and both the
    /// task it now names and the one its id names are left alone.
    #[test]
    fn an_item_whose_kind_or_target_is_not_its_ids_is_refused_naming_both() {
        let mut stored = item(&stop());
        stored.insert("target".into(), s("arn:aws:ecs:eu-west-1:1:task/prod/xyz"));
        let e = read(stored).unwrap_err();
        assert_eq!(
            e.source,
            ItemError::NotItsTarget {
                id: "stop-task:abc".into(),
                move_named: "stop-task:xyz".into(),
            }
        );
        assert_eq!(
            e.describe(),
            "ledger item action#stop-task:abc cannot be read: its kind and target (stop-task:xyz) are not the ones \
             its id \"stop-task:abc\" names"
        );
        assert_eq!(e.targets, ["arn:aws:ecs:eu-west-1:1:task/prod/xyz", "abc"]);
        assert!(e.may_be_in_flight());

        let mut stored = item(&stop());
        stored.insert("kind".into(), s("drain-instance"));
        assert!(matches!(
            read(stored).unwrap_err().source,
            ItemError::NotItsTarget { .. }
        ));
    }

    #[test]
    fn a_malformed_item_is_refused_with_what_can_be_read_of_it() {
        let mut stored = item(&stop());
        stored.remove("service");
        let e = read(stored).unwrap_err();
        assert_eq!(
            e.source,
            ItemError::Missing {
                kind: MoveKind::StopTask,
                attribute: "service"
            }
        );

        let mut stored = item(&stop());
        stored.insert("claimedAt".into(), s("yesterday"));
        stored.insert("state".into(), s("done"));
        let e = read(stored).unwrap_err();
        assert!(matches!(e.source, ItemError::Attributes(_)), "{e:?}");
        assert!(
            e.describe().contains("\"yesterday\" is not an RFC 3339 time"),
            "{}",
            e.describe()
        );
        assert!(!e.may_be_in_flight(), "a finished record blocks nothing");

        let mut stored = item(&stop());
        stored.remove("target");
        stored.insert("tasks".into(), s("one"));
        stored.insert("state".into(), AttributeValue::N("2".into()));
        let e = read(stored).unwrap_err();
        assert_eq!(e.targets, ["abc"], "the target in the id");
        assert_eq!(e.state, None);
        assert!(e.may_be_in_flight(), "a state that cannot be read may be in flight");

        let mut stored = Item::from(std::collections::HashMap::<String, AttributeValue>::new());
        stored.insert("sk".into(), s("action#garbage"));
        let e = read(stored).unwrap_err();
        assert_eq!(e.key, "action#garbage");
        assert!(e.targets.is_empty(), "names nothing: {e:?}");
    }
}

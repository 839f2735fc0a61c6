//! The ledger in DynamoDB: the only module that imports `aws-sdk-dynamodb`.
//!
//! One table (docs/operations.md, "The table"): partition key `pk` = `cluster#<name>`, sort key `sk` = `lease`,
//! `episode`, `action#<id>` or `cooldown#<service|instance>#<target>`. Items map to typed structs through
//! `serde_dynamo` (actions in `ledger::item`); an item that does not map is an error naming it, never dropped.
//! `init` is in `table.rs`. Every write that decides something is conditional:
//! - a claim is `attribute_not_exists(sk)`, and under a lease a `TransactWriteItems` whose `ConditionCheck` requires
//!   the lease item to still name the holder and epoch (the fencing token);
//!   `ReturnValuesOnConditionCheckFailure=ALL_OLD` returns the item that blocked it, so our own retried write
//!   (same claim token) is told from someone else's;
//! - a state change requires the current state to be one it may follow (`claimed → acting → done | failed |
//!   abandoned`);
//! - a lease write requires the version it read.
//!
//! Reads are strongly consistent. TTL (`expiresAt`, epoch seconds) only collects finished actions and cooldowns
//! (DynamoDB deletes expired items lazily, within days): expiry is always compared on read, never assumed.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use crate::aws::call::{CallError, Detail, Failure};

use super::item::{self, action_sk, millis, pk, ItemError, Unreadable};
use super::{
    ActionLog, ActionRecord, ActionState, Claim, CooldownTarget, EpisodeRecord, Fence, LeaseRecord, Ledger,
    LedgerError, PolicyRecord,
};

mod table;

pub use table::{create_table, TableSetup};

type Item = HashMap<String, AttributeValue>;

/// The lease item (`sk` = `lease`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseItem {
    #[serde(skip_deserializing)]
    pk: String,
    #[serde(skip_deserializing)]
    sk: String,
    holder: String,
    epoch: u64,
    version: String,
    duration_ms: u64,
    #[serde(with = "millis")]
    renewed_at: DateTime<Utc>,
    #[serde(default)]
    released: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyRecord>,
}

/// A cooldown item (`sk` = `cooldown#<target>`); TTL collects it a day after `until`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CooldownItem {
    #[serde(skip_deserializing)]
    pk: String,
    #[serde(skip_deserializing)]
    sk: String,
    /// `service#NAME` or `instance#ARN` ([`CooldownTarget::key`]).
    target: String,
    #[serde(with = "millis")]
    until: DateTime<Utc>,
    #[serde(skip_deserializing)]
    expires_at: i64,
}

/// An item as DynamoDB takes it.
fn encode(what: &'static str, value: impl Serialize) -> Result<Item, LedgerError> {
    to_item(value).map_err(|source| LedgerError::Encode { what, source })
}

/// A lease or cooldown item that does not map: an error naming it.
fn unreadable(key: &str, source: serde_dynamo::Error) -> LedgerError {
    LedgerError::Unreadable(Box::new(Unreadable {
        key: key.to_owned(),
        targets: Vec::new(),
        state: None,
        source: ItemError::Attributes(source),
    }))
}

/// Finished actions are kept this long before TTL may collect them (status shows them meanwhile).
const KEEP_FINISHED_DAYS: i64 = 30;

/// How long one attempt of a ledger call may take. Without it a call whose answer never comes (a connection cut
/// mid-request) waits on the socket for minutes: the chaos soak saw a leader and its follower each stuck two minutes
/// in a lease round. DynamoDB answers in milliseconds.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a ledger call may take, its retries included: well inside a lease round (a third of the lease).
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A ledger in a DynamoDB table made by [`create_table`] (`ecs-rebalancer init`).
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    /// A client from a loaded AWS configuration (endpoint from `AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL`).
    pub fn from_conf(conf: &aws_config::SdkConfig, table: &str) -> DynamoLedger {
        let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let config = aws_sdk_dynamodb::config::Builder::from(conf)
            .timeout_config(timeouts)
            .build();
        DynamoLedger {
            client: Client::from_conf(config),
            table: table.to_owned(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// [`classify`], naming this ledger's table when it is the table that is missing.
    fn classify<E>(&self, operation: &'static str, e: SdkError<E, HttpResponse>) -> LedgerError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match classify(operation, e) {
            LedgerError::Table(d) if d.call().and_then(CallError::code) == Some("ResourceNotFoundException") => {
                LedgerError::Table(d.reworded(format!(
                    "{:?} does not exist in this account and Region ({operation}): create it with \
                     `ecs-rebalancer init --table {}`",
                    self.table, self.table
                )))
            }
            LedgerError::Table(d) => {
                let text = d.as_str().replace("--table NAME", &format!("--table {}", self.table));
                LedgerError::Table(d.reworded(format!("{:?}: {text}", self.table)))
            }
            other => other,
        }
    }

    async fn query(&self, cluster: &str, prefix: &str) -> Result<Vec<Item>, LedgerError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk(cluster)))
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.classify("Query", e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// The item that blocked a claim, when the failure did not carry it.
    async fn get(&self, cluster: &str, sk: &str) -> Result<Option<Item>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(pk(cluster)))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|e| self.classify("GetItem", e))?;
        Ok(out.item().cloned())
    }

    /// The condition a fenced write carries in its transaction: the lease still names the fence's holder and epoch
    /// and is not released.
    fn lease_held(&self, cluster: &str, fence: &Fence) -> Result<ConditionCheck, LedgerError> {
        ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(pk(cluster)))
            .key("sk", s("lease"))
            .condition_expression("holder = :holder AND epoch = :epoch AND released = :no")
            .expression_attribute_values(":holder", s(&fence.holder))
            .expression_attribute_values(":epoch", n(fence.epoch))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .build()
            .map_err(|e| LedgerError::Unavailable(e.to_string().into()))
    }

    /// Every action of the cluster, newest claim first, and every action item that cannot be read (for `status`).
    pub async fn action_log(&self, cluster: &str) -> Result<ActionLog, LedgerError> {
        let mut log = ActionLog::default();
        for result in self
            .query(cluster, "action#")
            .await?
            .into_iter()
            .map(|i| item::read(i.into()))
        {
            match result {
                Ok(r) => log.records.push(r),
                Err(u) => log.unreadable.push(u),
            }
        }
        log.records
            .sort_by(|a, b| b.claimed_at.cmp(&a.claimed_at).then_with(|| a.id.cmp(&b.id)));
        Ok(log)
    }

    /// Every action of the cluster, newest claim first; [`LedgerError::Unreadable`] if an item cannot be read.
    pub async fn actions(&self, cluster: &str) -> Result<Vec<ActionRecord>, LedgerError> {
        self.action_log(cluster).await?.into_records()
    }
}

/// A failed DynamoDB call in the ledger's terms (the classification is [`crate::aws::call::classify`]'s).
pub(super) fn classify<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> LedgerError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let call = crate::aws::call::classify(operation, e);
    if let Some(config) = call.config() {
        return LedgerError::Config(config.clone());
    }
    if call.code() == Some("ResourceNotFoundException") {
        let text = format!("{call} (create the table with `ecs-rebalancer init --table NAME`)");
        return LedgerError::Table(Detail::from(call).reworded(text));
    }
    // DynamoDB's answer to a key of the wrong names or types: the table is someone else's, or made by hand.
    if let Failure::Service { code, message, .. } = call.failure() {
        // GetItem/PutItem say "The provided key element does not match the schema", Query "Query condition missed
        // key schema element: id".
        if code == "ValidationException"
            && (message.contains("does not match the schema") || message.contains("key schema"))
        {
            let text = format!(
                "{call} (the table's key schema is not ecs-rebalancer's, string keys `pk` and `sk`: \
                 `ecs-rebalancer init --table NAME` says what differs)"
            );
            return LedgerError::Table(Detail::from(call).reworded(text));
        }
    }
    LedgerError::Unavailable(call.into())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn time(t: DateTime<Utc>) -> AttributeValue {
    s(millis::text(&t))
}

/// A blocked claim: our own earlier write of the same attempt, or someone else's, or an item that cannot be read.
fn blocked(existing: Option<&Item>, record: &ActionRecord) -> Result<Claim, LedgerError> {
    match existing.map(|i| item::read(i.clone().into())) {
        Some(Ok(e)) if e.token == record.token => Ok(Claim::Claimed),
        Some(Ok(e)) => Ok(Claim::AlreadyClaimed(Box::new(e))),
        Some(Err(u)) => Err(LedgerError::Unreadable(Box::new(u))),
        None => Err(LedgerError::Unavailable(Detail::new(format!(
            "claim of {} was refused but no item blocks it",
            record.id
        )))),
    }
}

impl Ledger for DynamoLedger {
    async fn claim(&self, record: ActionRecord, fence: Option<&Fence>) -> Result<Claim, LedgerError> {
        let sk = action_sk(&record.id);
        let item: Item = item::fitting_item(&record)?.into();
        let Some(fence) = fence else {
            let out = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(sk)")
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            return match out {
                Ok(_) => Ok(Claim::Claimed),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        match c.item() {
                            Some(item) => blocked(Some(item), &record),
                            None => blocked(self.get(&record.cluster, &sk).await?.as_ref(), &record),
                        }
                    }
                    _ => Err(self.classify("PutItem", e)),
                },
            };
        };
        let lease_held = self.lease_held(&record.cluster, fence)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| LedgerError::Unavailable(e.to_string().into()))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(lease_held).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let e = match out {
            Ok(_) => return Ok(Claim::Claimed),
            Err(e) => e,
        };
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = e.as_service_error() else {
            return Err(self.classify("TransactWriteItems", e));
        };
        let reasons = cancelled.cancellation_reasons();
        let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
        if failed(0) {
            return Err(LedgerError::Fenced {
                holder: fence.holder.clone(),
                epoch: fence.epoch,
            });
        }
        if failed(1) {
            return match reasons[1].item() {
                Some(item) => blocked(Some(item), &record),
                None => blocked(self.get(&record.cluster, &sk).await?.as_ref(), &record),
            };
        }
        Err(LedgerError::Unavailable(Detail::new(format!(
            "TransactWriteItems cancelled: {:?}",
            reasons.iter().map(|r| r.code().unwrap_or("None")).collect::<Vec<_>>()
        ))))
    }

    async fn update(
        &self,
        cluster: &str,
        id: &str,
        state: ActionState,
        outcome: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let from: Vec<ActionState> = [ActionState::Claimed, ActionState::Acting]
            .into_iter()
            .filter(|f| state.may_follow(*f))
            .collect();
        let mut set = vec!["#state = :to", "updatedAt = :now"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(cluster)))
            .key("sk", s(action_sk(id)))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(state.as_str()))
            .expression_attribute_values(":now", time(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(o) = outcome {
            set.push("outcome = :outcome");
            request = request.expression_attribute_values(":outcome", s(o));
        }
        if !state.in_flight() {
            set.push("expiresAt = :expires");
            let expires = (now + chrono::Duration::days(KEEP_FINISHED_DAYS)).timestamp();
            request = request.expression_attribute_values(":expires", n(expires));
        }
        let allowed: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        for (name, f) in allowed.iter().zip(&from) {
            request = request.expression_attribute_values(name, s(f.as_str()));
        }
        let condition = match allowed.is_empty() {
            // Nothing may precede it (a move back to `claimed`): a condition that never holds.
            true => "attribute_not_exists(pk) AND attribute_exists(pk)".to_owned(),
            false => format!("#state IN ({})", allowed.join(", ")),
        };
        let out = request
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(condition)
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    match c.item() {
                        Some(_) => Ok(false),
                        None => match self.get(cluster, &action_sk(id)).await? {
                            Some(_) => Ok(false),
                            None => Err(LedgerError::NotFound(id.to_owned())),
                        },
                    }
                }
                _ => Err(self.classify("UpdateItem", e)),
            },
        }
    }

    async fn in_flight(&self, cluster: &str) -> Result<Vec<ActionRecord>, LedgerError> {
        let mut records = self.actions(cluster).await?;
        records.retain(|r| r.state.in_flight());
        Ok(records)
    }

    async fn since(&self, cluster: &str, since: DateTime<Utc>) -> Result<Vec<ActionRecord>, LedgerError> {
        let mut records = self.actions(cluster).await?;
        records.retain(|r| r.claimed_at > since);
        Ok(records)
    }

    async fn read_actions(&self, cluster: &str, since: DateTime<Utc>) -> Result<ActionLog, LedgerError> {
        let mut log = self.action_log(cluster).await?;
        log.records.retain(|r| r.claimed_at > since);
        Ok(log)
    }

    async fn set_cooldown(
        &self,
        cluster: &str,
        target: CooldownTarget,
        until: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let item = CooldownItem {
            pk: pk(cluster),
            sk: format!("cooldown#{}", target.key()),
            target: target.key(),
            until,
            expires_at: (until + chrono::Duration::days(1)).timestamp(),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode("a cooldown", item)?))
            .send()
            .await
            .map_err(|e| self.classify("PutItem", e))?;
        Ok(())
    }

    async fn cooldowns(
        &self,
        cluster: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CooldownTarget, DateTime<Utc>)>, LedgerError> {
        let mut running = Vec::new();
        for raw in self.query(cluster, "cooldown#").await? {
            let key = raw.get("sk").and_then(|k| k.as_s().ok()).cloned().unwrap_or_default();
            let c: CooldownItem = from_item(raw).map_err(|e| unreadable(&key, e))?;
            let target = CooldownTarget::from_key(&c.target).ok_or_else(|| {
                let why = format!("unknown cooldown target {:?}", c.target);
                unreadable(&key, serde::de::Error::custom(why))
            })?;
            if c.until > now {
                running.push((target, c.until));
            }
        }
        Ok(running)
    }

    async fn read_episode(&self, cluster: &str) -> Result<Option<EpisodeRecord>, LedgerError> {
        let Some(item) = self.get(cluster, "episode").await? else {
            return Ok(None);
        };
        match item
            .get("episode")
            .and_then(|v| v.as_s().ok())
            .map(|j| serde_json::from_str::<EpisodeRecord>(j))
        {
            Some(Ok(episode)) => Ok(Some(episode)),
            // As if there were none: the planner then starts only above the trigger, so an unreadable item can only
            // make it do less.
            _ => {
                tracing::warn!(cluster, table = %self.table, "the episode item is unreadable; taken as no episode");
                Ok(None)
            }
        }
    }

    async fn write_episode(
        &self,
        cluster: &str,
        episode: &EpisodeRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        let json = serde_json::to_string(episode).map_err(|e| LedgerError::Unavailable(e.to_string().into()))?;
        let mut item = Item::new();
        item.insert("pk".into(), s(pk(cluster)));
        item.insert("sk".into(), s("episode"));
        item.insert("episode".into(), s(json));
        if let Some(f) = fence {
            item.insert("holder".into(), s(&f.holder));
            item.insert("epoch".into(), n(f.epoch));
        }
        let Some(fence) = fence else {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| classify("PutItem", e))?;
            return Ok(());
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|e| LedgerError::Unavailable(e.to_string().into()))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(self.lease_held(cluster, fence)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let e = match out {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                if cancelled.cancellation_reasons().first().and_then(|r| r.code())
                    == Some("ConditionalCheckFailed") =>
            {
                Err(LedgerError::Fenced {
                    holder: fence.holder.clone(),
                    epoch: fence.epoch,
                })
            }
            _ => Err(classify("TransactWriteItems", e)),
        }
    }

    async fn read_lease(&self, cluster: &str) -> Result<Option<LeaseRecord>, LedgerError> {
        let Some(raw) = self.get(cluster, "lease").await? else {
            return Ok(None);
        };
        let l: LeaseItem = from_item(raw).map_err(|e| unreadable("lease", e))?;
        Ok(Some(LeaseRecord {
            holder: l.holder,
            epoch: l.epoch,
            version: l.version,
            duration_ms: l.duration_ms,
            renewed_at: l.renewed_at,
            released: l.released,
            policy: l.policy,
        }))
    }

    async fn write_lease(
        &self,
        cluster: &str,
        lease: &LeaseRecord,
        expected_version: Option<&str>,
    ) -> Result<bool, LedgerError> {
        let item = LeaseItem {
            pk: pk(cluster),
            sk: "lease".into(),
            holder: lease.holder.clone(),
            epoch: lease.epoch,
            version: lease.version.clone(),
            duration_ms: lease.duration_ms,
            renewed_at: lease.renewed_at,
            released: lease.released,
            policy: lease.policy.clone(),
        };
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode("the lease", item)?));
        let request = match expected_version {
            None => request.condition_expression("attribute_not_exists(sk)"),
            Some(v) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", s(v)),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.classify("PutItem", e)),
        }
    }
}

//! `ecs-rebalancer init`: the ledger's table, made once and never changed.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::classify;
use crate::aws::call::Detail;
use crate::ledger::LedgerError;

/// What `init` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSetup {
    /// The table was created, with TTL on `expiresAt`.
    Created,
    /// A table of that name was already there, with the ledger's key schema and TTL on `expiresAt`: left as it is.
    AlreadyThere,
}

/// The ledger's key schema: `pk` (partition) and `sk` (sort), both strings.
const KEYS: [(&str, KeyType); 2] = [("pk", KeyType::Hash), ("sk", KeyType::Range)];
/// The attribute TTL collects finished actions and cooldowns by.
const TTL_ATTRIBUTE: &str = "expiresAt";

/// Creates the ledger table: on-demand capacity, `pk`/`sk` string keys, TTL on `expiresAt`. Idempotent: a table of
/// that name that already has the ledger's key schema and TTL is [`TableSetup::AlreadyThere`] and left as it is;
/// one shaped otherwise is [`LedgerError::Table`] naming every difference. An existing table is never changed (it
/// may be someone else's).
pub async fn create_table(conf: &aws_config::SdkConfig, table: &str) -> Result<TableSetup, LedgerError> {
    let client = Client::new(conf);
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| LedgerError::Table(e.to_string().into()))
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| LedgerError::Table(e.to_string().into()))
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(KEYS[0].0, KEYS[0].1.clone())?)
        .key_schema(key(KEYS[1].0, KEYS[1].1.clone())?)
        .attribute_definitions(attr(KEYS[0].0)?)
        .attribute_definitions(attr(KEYS[1].0)?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ResourceInUseException") => {
            check_existing(&client, table).await?;
            return Ok(TableSetup::AlreadyThere);
        }
        Err(e) => return Err(classify("CreateTable", e)),
    }
    // A new table is CREATING for a few seconds; TTL can be set once it is ACTIVE.
    for _ in 0..60 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| classify("DescribeTable", e))?;
        if out.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| LedgerError::Table(e.to_string().into()))?,
        )
        .send()
        .await
        .map_err(|e| classify("UpdateTimeToLive", e))?;
    Ok(TableSetup::Created)
}

/// An existing table is the ledger's when its keys are `pk` (HASH, S) and `sk` (RANGE, S) and TTL is on (or being
/// turned on) for `expiresAt`; otherwise the error names every difference and what to do.
async fn check_existing(client: &Client, table: &str) -> Result<(), LedgerError> {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| classify("DescribeTable", e))?;
    let description = described.table();
    let keys: Vec<String> = description
        .map(|t| {
            let kind_of = |name: &str| {
                t.attribute_definitions()
                    .iter()
                    .find(|a| a.attribute_name() == name)
                    .map_or("?", |a| a.attribute_type().as_str())
                    .to_owned()
            };
            let mut keys: Vec<&KeySchemaElement> = t.key_schema().iter().collect();
            // HASH before RANGE, whatever order DynamoDB lists them in.
            keys.sort_by_key(|k| *k.key_type() != KeyType::Hash);
            keys.iter()
                .map(|k| {
                    format!(
                        "{} ({}, {})",
                        k.attribute_name(),
                        k.key_type().as_str(),
                        kind_of(k.attribute_name())
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let wanted: Vec<String> = KEYS
        .iter()
        .map(|(name, kind)| format!("{name} ({}, S)", kind.as_str()))
        .collect();
    let mut differences = Vec::new();
    if keys != wanted {
        differences.push(format!(
            "its key schema is {}, the ledger's is {}",
            if keys.is_empty() {
                "unknown".to_owned()
            } else {
                keys.join(", ")
            },
            wanted.join(", ")
        ));
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| classify("DescribeTimeToLive", e))?;
    let ttl = ttl.time_to_live_description();
    let status = ttl
        .and_then(|t| t.time_to_live_status())
        .map_or("DISABLED", |s| s.as_str());
    let attribute = ttl.and_then(|t| t.attribute_name());
    if !(matches!(status, "ENABLED" | "ENABLING") && attribute == Some(TTL_ATTRIBUTE)) {
        differences.push(format!(
            "its TTL is {status}{}, the ledger's is ENABLED on {TTL_ATTRIBUTE}",
            attribute.map(|a| format!(" on {a}")).unwrap_or_default()
        ));
    }
    if differences.is_empty() {
        return Ok(());
    }
    let keys_differ = keys != wanted;
    Err(LedgerError::Table(Detail::new(format!(
        "table {table} already exists and is not shaped as the ledger needs: {}; {}",
        differences.join("; "),
        if keys_differ {
            "choose another --table name (init never changes an existing table)".to_owned()
        } else {
            format!(
                "turn TTL on with `aws dynamodb update-time-to-live --table-name {table} \
                 --time-to-live-specification Enabled=true,AttributeName={TTL_ATTRIBUTE}` (init never changes an \
                 existing table)"
            )
        }
    ))))
}

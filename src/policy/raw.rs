//! The policy file as written: serde types with `deny_unknown_fields`, read and written by `yaml_serde`.
//!
//! This is the only file that touches `yaml_serde`. Its parse is the authority on a policy's shape: nothing is
//! accepted that it rejects. But serde stops at the first error, so the validator (`validate.rs`) walks a spanned
//! copy of the same document first and reports every error with its position; the field names it accepts come from
//! these types ([`fields`]), so the two cannot drift apart.
//!
//! Leaf values stay as written (durations and globs as strings, numbers as numbers): turning them into typed values
//! is the validator's and the defaulter's job, where an error can be placed on a line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: RawMetadata,
    pub spec: RawSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSpec {
    pub clusters: Vec<String>,
    pub metric: String,
    pub threshold: RawThreshold,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<RawExclude>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<RawBudgets>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<RawCooldown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<RawUtilization>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawThreshold {
    pub trigger: f64,
    pub target: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawExclude {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_attributes: BTreeMap<String, String>,
}

/// `budgets.perService` is a task count or a percentage of the service's desired count (`"25%"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawCountOrPercent {
    Count(u32),
    Percent(String),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawBudgets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    /// The name `maxUnavailable` had before it counted tasks below desired at once; read as `maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_cycle: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_service: Option<RawCountOrPercent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_drains: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCooldown {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_instance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawUtilization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unknown_share: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<String>,
}

/// The field names a raw type accepts, exactly as serde matches them (after `rename_all`).
pub fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<T>()
}

/// A `yaml_serde` failure, with the position split out of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawError {
    /// 1-based line and column, when yaml_serde knows them.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

/// Parses every document of a YAML stream into [`RawPolicy`] values, stopping at the first error. A document with
/// nothing in it (a trailing `---`) is skipped, as the validator skips it.
pub fn parse_documents(text: &str) -> Result<Vec<RawPolicy>, RawError> {
    yaml_serde::Deserializer::from_str(text)
        .filter_map(|doc| Option::<RawPolicy>::deserialize(doc).map_err(raw_error).transpose())
        .collect()
}

/// Writes one policy document as YAML.
pub fn to_yaml(policy: &RawPolicy) -> Result<String, RawError> {
    yaml_serde::to_string(policy).map_err(raw_error)
}

fn raw_error(e: yaml_serde::Error) -> RawError {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    RawError {
        position: e.location().map(|l| (l.line(), l.column())),
        message: message.replace('`', "\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_serde_names_the_first_unknown_field_and_where() {
        let text = "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: a}\nspec:\n  metrik: count\n";
        let e = parse_documents(text).unwrap_err();
        assert_eq!(e.position, Some((5, 3)));
        assert!(
            e.message.starts_with("spec: unknown field \"metrik\", expected one of"),
            "{}",
            e.message
        );
    }

    #[test]
    fn field_lists_follow_the_serde_renames() {
        assert_eq!(fields::<RawPolicy>(), ["apiVersion", "kind", "metadata", "spec"]);
        assert!(fields::<RawBudgets>().contains(&"concurrentDrains"));
    }
}

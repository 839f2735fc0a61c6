//! The snapshot file: a cluster captured to disk in the shapes `aws ecs describe-*` prints
//! (documented for users in `docs/snapshot.md`).
//!
//! Loading is two-speed. The fast path deserialises the whole file straight into [`Snapshot`]. Only when that fails
//! does the slow path re-read the file as a JSON tree and check every item on its own, so the error names each bad
//! item by section, index and ARN and the field inside it (`tasks[12] (arn:…): containers[0].cpu: invalid type…`),
//! all of them at once rather than the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ecs::{ContainerInstance, Service, Task, TaskDefinition};
use super::timestamp;

/// At most this many item errors are listed; the rest are counted.
const MAX_LISTED_ERRORS: usize = 50;

/// Actual use of an instance, as a fraction of its capacity (0..=1). Missing means unknown, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Utilization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<f64>,
}

/// Task scale-in protection, as `GetTaskProtection` returns it under `protectedTasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedTask {
    pub task_arn: String,
    pub protection_enabled: bool,
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<DateTime<Utc>>,
}

impl ProtectedTask {
    /// Whether the protection holds at `now` (docs/ecs.md: Task scale-in protection: protected tasks are do-not-disrupt).
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.protection_enabled && self.expiration_date.is_none_or(|t| t > now)
    }
}

/// A whole cluster as the ECS API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The cluster's name (what policies match with `spec.clusters`).
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    /// When the snapshot was taken; the planner's "now" for offline runs when set.
    #[serde(default, with = "timestamp::option", skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<DateTime<Utc>>,
    pub container_instances: Vec<ContainerInstance>,
    pub tasks: Vec<Task>,
    pub services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_definitions: Vec<TaskDefinition>,
    /// Keyed by `containerInstanceArn`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub utilization: BTreeMap<String, Utilization>,
    /// Tasks with scale-in protection (`GetTaskProtection`); absent means none known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_tasks: Vec<ProtectedTask>,
}

/// What went wrong loading or saving a snapshot. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {}", path.display(), ItemErrorList(.errors))]
    Items { path: PathBuf, errors: Vec<ItemError> },
}

/// One bad item: which section, which index, which item (by ARN or name when it has one), which field, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// `containerInstances[3] (arn:…)`, `utilization["arn:…"]`, or a top-level key.
    pub item: String,
    /// The field inside the item (`containers[0].cpu`), empty when the item itself is wrong.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.item, self.message)
        } else {
            write!(f, "{}: {}: {}", self.item, self.field, self.message)
        }
    }
}

struct ItemErrorList<'a>(&'a [ItemError]);

impl fmt::Display for ItemErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} invalid item{}", if n == 1 { "" } else { "s" })?;
        for e in self.0.iter().take(MAX_LISTED_ERRORS) {
            write!(f, "\n  {e}")?;
        }
        if n > MAX_LISTED_ERRORS {
            write!(f, "\n  … and {} more", n - MAX_LISTED_ERRORS)?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// Reads and checks a snapshot file.
    pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let bytes = std::fs::read(path).map_err(|source| SnapshotError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_slice(path, &bytes)
    }

    /// Parses snapshot JSON; `path` only names the source in errors.
    pub fn from_slice(path: &Path, bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let errors = match serde_json::from_slice::<Snapshot>(bytes) {
            Ok(snapshot) => snapshot.check_values(),
            Err(e) if e.is_syntax() || e.is_eof() || e.is_io() => {
                return Err(SnapshotError::Syntax {
                    path: path.to_owned(),
                    line: e.line(),
                    column: e.column(),
                    message: strip_position(&e.to_string()),
                })
            }
            // The shape is wrong somewhere: find every place, with names.
            Err(_) => match serde_json::from_slice::<Value>(bytes) {
                Ok(tree) => diagnose(&tree),
                Err(e) => {
                    return Err(SnapshotError::Syntax {
                        path: path.to_owned(),
                        line: e.line(),
                        column: e.column(),
                        message: strip_position(&e.to_string()),
                    })
                }
            },
        };
        match errors {
            Ok(snapshot) => Ok(snapshot),
            Err(errors) => Err(SnapshotError::Items {
                path: path.to_owned(),
                errors,
            }),
        }
    }

    /// Writes the snapshot as pretty JSON (the same format [`Snapshot::load`] reads).
    pub fn save(&self, path: &Path) -> Result<(), SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        text.push('\n');
        std::fs::write(path, text).map_err(io)
    }

    /// Checks what the types cannot: utilisation values are fractions. Returns the snapshot when all hold.
    fn check_values(self) -> Result<Snapshot, Vec<ItemError>> {
        let mut errors = Vec::new();
        for (arn, u) in &self.utilization {
            for (field, value) in [("cpu", u.cpu), ("memory", u.memory)] {
                if let Some(v) = value {
                    if !(0.0..=1.0).contains(&v) {
                        errors.push(ItemError {
                            item: format!("utilization[{arn:?}]"),
                            field: field.into(),
                            message: format!("{v} is not a fraction between 0 and 1"),
                        });
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

/// serde_json appends " at line L column C"; the Syntax variant carries those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The slow path: checks each section and item of a JSON tree separately and names every failure.
fn diagnose(tree: &Value) -> Result<Snapshot, Vec<ItemError>> {
    let Some(top) = tree.as_object() else {
        return Err(vec![ItemError {
            item: "snapshot".into(),
            field: String::new(),
            message: format!("expected a JSON object, found {}", kind_of(tree)),
        }]);
    };
    let mut errors = Vec::new();
    let cluster = match top.get("cluster") {
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            errors.push(top_level(
                "cluster",
                format!("expected a string, found {}", kind_of(other)),
            ));
            String::new()
        }
        None => {
            errors.push(top_level("cluster", "missing field \"cluster\"".into()));
            String::new()
        }
    };
    let cluster_arn = field::<Option<String>>(top, "clusterArn", &mut errors).flatten();
    let captured_at = match top.get("capturedAt") {
        None | Some(Value::Null) => None,
        Some(v) => {
            #[derive(Deserialize)]
            struct At(#[serde(with = "timestamp::option")] Option<DateTime<Utc>>);
            match At::deserialize(v) {
                Ok(At(t)) => t,
                Err(e) => {
                    errors.push(top_level("capturedAt", quote_fields(&e.to_string())));
                    None
                }
            }
        }
    };
    let container_instances = section(top, "containerInstances", true, "containerInstanceArn", &mut errors);
    let tasks = section(top, "tasks", true, "taskArn", &mut errors);
    let services = section(top, "services", true, "serviceArn", &mut errors);
    let task_definitions = section(top, "taskDefinitions", false, "taskDefinitionArn", &mut errors);
    let utilization = field::<BTreeMap<String, Utilization>>(top, "utilization", &mut errors).unwrap_or_default();
    let protected_tasks = section(top, "protectedTasks", false, "taskArn", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Snapshot {
        cluster,
        cluster_arn,
        captured_at,
        container_instances,
        tasks,
        services,
        task_definitions,
        utilization,
        protected_tasks,
    }
    .check_values()
}

fn top_level(key: &str, message: String) -> ItemError {
    ItemError {
        item: key.into(),
        field: String::new(),
        message,
    }
}

/// An optional top-level field; `None` when absent, an error (and `None`) when present but malformed.
fn field<T: DeserializeOwned>(
    top: &serde_json::Map<String, Value>,
    key: &str,
    errors: &mut Vec<ItemError>,
) -> Option<T> {
    let value = top.get(key)?;
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(ItemError {
                item: key.into(),
                field: path_text(e.path()),
                message: quote_fields(&e.inner().to_string()),
            });
            None
        }
    }
}

/// Deserialises each item of an array section on its own, so one bad item does not hide the next.
fn section<T: DeserializeOwned>(
    top: &serde_json::Map<String, Value>,
    key: &str,
    required: bool,
    id_field: &str,
    errors: &mut Vec<ItemError>,
) -> Vec<T> {
    let items = match top.get(key) {
        Some(Value::Array(items)) => items,
        None if !required => return Vec::new(),
        None => {
            errors.push(top_level(key, format!("missing field \"{key}\"")));
            return Vec::new();
        }
        Some(other) => {
            errors.push(top_level(key, format!("expected an array, found {}", kind_of(other))));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match serde_path_to_error::deserialize::<_, T>(item) {
            Ok(v) => out.push(v),
            Err(e) => {
                let id = item.get(id_field).and_then(Value::as_str);
                errors.push(ItemError {
                    item: match id {
                        Some(id) => format!("{key}[{i}] ({id})"),
                        None => format!("{key}[{i}]"),
                    },
                    field: path_text(e.path()),
                    message: quote_fields(&e.inner().to_string()),
                });
            }
        }
    }
    out
}

/// `.` (the item itself) becomes empty; other paths print as serde_path_to_error writes them.
fn path_text(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." {
        String::new()
    } else {
        text
    }
}

/// serde writes field names in backticks; users read them in JSON's double quotes.
fn quote_fields(message: &str) -> String {
    message.replace('`', "\"")
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

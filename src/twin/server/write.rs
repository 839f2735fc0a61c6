//! The mutations, applied through the twin's `EcsApi` and its own methods, and task scale-in protection (read and
//! write), which is answered at the twin's clock.

use std::time::Duration;

use serde_json::{json, Value};

use crate::ecs::{EcsApi, InstanceState};
use crate::model::Snapshot;
use crate::twin::{ProtectionFailure, Twin};

use super::error::ApiError;
use super::read::{batch, check_cluster, names, to_value};
use super::request as r;

/// `GetTaskProtection` answers at most this many tasks a call, `UpdateTaskProtection` changes at most this many
/// (API reference: "A list of up to 100 task IDs", "A list of up to 10 task IDs").
const GET_PROTECTION_BATCH: usize = 100;
const UPDATE_PROTECTION_BATCH: usize = 10;
/// `expiresInMinutes`: 1 minute to 48 hours, 2 hours when not given
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>).
const PROTECTION_MINUTES: std::ops::RangeInclusive<i64> = 1..=2880;
const DEFAULT_PROTECTION_MINUTES: i64 = 120;

/// The current state, once the request's cluster is known to be the twin's.
fn snapshot_of(twin: &Twin, cluster: Option<&str>) -> Result<Snapshot, ApiError> {
    let snap = twin.snapshot();
    check_cluster(&snap, cluster)?;
    Ok(snap)
}

pub(super) async fn stop_task(twin: &Twin, req: &r::StopTask) -> Result<Value, ApiError> {
    let snap = snapshot_of(twin, req.cluster.as_deref())?;
    let asked = req
        .task
        .as_deref()
        .ok_or_else(|| ApiError::invalid("task is required"))?;
    let arn = task_arn_of(&snap, asked).ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
    twin.stop_task(&arn, req.reason.as_deref().unwrap_or("")).await?;
    let task = twin.snapshot().tasks.into_iter().find(|t| t.task_arn == arn);
    Ok(json!({"task": to_value(&task)}))
}

pub(super) async fn update_service(twin: &Twin, req: &r::UpdateService) -> Result<Value, ApiError> {
    let snap = snapshot_of(twin, req.cluster.as_deref())?;
    let asked = req
        .service
        .as_deref()
        .ok_or_else(|| ApiError::invalid("service is required"))?;
    let name = snap
        .services
        .iter()
        .find(|s| names(&s.service_arn, asked) || s.service_name == asked)
        .map(|s| s.service_name.clone())
        .ok_or_else(|| ApiError::new("ServiceNotFoundException", "Service not found."))?;
    if let Some(n) = req.desired_count {
        let n = u32::try_from(n).map_err(|_| ApiError::invalid("desiredCount must be a non-negative integer"))?;
        twin.set_desired_count(&name, n)?;
    }
    if req.force_new_deployment == Some(true) {
        twin.force_new_deployment(&name).await?;
    }
    let service = twin.snapshot().services.into_iter().find(|s| s.service_name == name);
    Ok(json!({"service": to_value(&service)}))
}

pub(super) async fn update_container_instances_state(
    twin: &Twin,
    req: &r::UpdateContainerInstancesState,
) -> Result<Value, ApiError> {
    let snap = snapshot_of(twin, req.cluster.as_deref())?;
    let ids = batch(req.container_instances.as_deref(), "containerInstances", 10)?;
    let to = match req.status.as_deref() {
        Some("DRAINING") => InstanceState::Draining,
        Some("ACTIVE") => InstanceState::Active,
        // ECS's own words (moto keeps them too); the value is not echoed, so no Rust formatting can leak into it.
        _ => {
            return Err(ApiError::invalid(
                "Container instance status should be one of [ACTIVE, DRAINING]",
            ))
        }
    };
    let mut updated = Vec::new();
    let mut failures = Vec::new();
    for id in &ids {
        let Some(arn) = snap
            .container_instances
            .iter()
            .find(|i| names(&i.container_instance_arn, id))
            .map(|i| i.container_instance_arn.clone())
        else {
            failures.push(json!({"arn": id, "reason": "MISSING"}));
            continue;
        };
        match twin.set_instance_state(&arn, to).await {
            Ok(()) => updated.push(arn),
            Err(e) => failures.push(json!({"arn": arn, "reason": "INVALID", "detail": e.to_string()})),
        }
    }
    let found: Vec<Value> = twin
        .snapshot()
        .container_instances
        .iter()
        .filter(|i| updated.contains(&i.container_instance_arn))
        .map(to_value)
        .collect();
    Ok(json!({"containerInstances": found, "failures": failures}))
}

pub(super) fn put_attributes(twin: &Twin, req: &r::PutAttributes) -> Result<Value, ApiError> {
    let snap = snapshot_of(twin, req.cluster.as_deref())?;
    let attributes = match req.attributes.as_deref() {
        Some(a) if !a.is_empty() && a.len() <= 10 => a,
        _ => return Err(ApiError::invalid("attributes must hold 1 to 10 attributes")),
    };
    for a in attributes {
        let name = a
            .name
            .as_deref()
            .ok_or_else(|| ApiError::invalid("an attribute needs a name"))?;
        if a.target_type.as_deref().is_some_and(|t| t != "container-instance") {
            return Err(ApiError::invalid("targetType must be container-instance"));
        }
        let target = a
            .target_id
            .as_deref()
            .ok_or_else(|| ApiError::invalid("an attribute needs a targetId"))?;
        let arn = snap
            .container_instances
            .iter()
            .find(|i| names(&i.container_instance_arn, target))
            .map(|i| i.container_instance_arn.clone())
            .ok_or_else(|| ApiError::new("TargetNotFoundException", format!("Could not find {target}.")))?;
        twin.put_attribute(&arn, name, a.value.as_deref())?;
    }
    Ok(json!({"attributes": attributes}))
}

/// The ARN of the task a request names (ARN or ID), if the twin has it.
fn task_arn_of(snap: &Snapshot, asked: &str) -> Option<String> {
    snap.tasks
        .iter()
        .find(|t| names(&t.task_arn, asked))
        .map(|t| t.task_arn.clone())
}

/// One task's protection as ECS shows it: `expirationDate` only while protection is on.
fn protection_view(p: &crate::model::ProtectedTask) -> Value {
    let mut v = json!({"taskArn": p.task_arn, "protectionEnabled": p.protection_enabled});
    if let (true, Some(t)) = (p.protection_enabled, p.expiration_date) {
        v["expirationDate"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    v
}

/// Each named task's protection as `answer` gives it, or its `failures[]` entry.
fn protections(
    snap: &Snapshot,
    ids: &[String],
    answer: impl Fn(&str) -> Result<crate::model::ProtectedTask, ProtectionFailure>,
) -> Value {
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for id in ids {
        match task_arn_of(snap, id)
            .ok_or(ProtectionFailure::Missing)
            .and_then(|arn| answer(&arn))
        {
            Ok(p) => protected.push(protection_view(&p)),
            Err(f) => failures.push(json!({"arn": id, "reason": f.reason()})),
        }
    }
    json!({"protectedTasks": protected, "failures": failures})
}

/// `GetTaskProtection`: each named task's protection at the twin's clock; unknown tasks come back in `failures[]` as
/// `MISSING`, tasks of no service as `TASK_NOT_VALID`.
pub(super) fn get_task_protection(twin: &Twin, req: &r::GetTaskProtection) -> Result<Value, ApiError> {
    let snap = snapshot_of(twin, req.cluster.as_deref())?;
    let ids = batch(req.tasks.as_deref(), "tasks", GET_PROTECTION_BATCH)?;
    if ids.is_empty() {
        return Err(ApiError::invalid("tasks: name 1 to 100 tasks"));
    }
    Ok(protections(&snap, &ids, |arn| twin.task_protection(arn)))
}

/// `UpdateTaskProtection`: `protectionEnabled` for up to 10 tasks, for `expiresInMinutes` (1–2880, default 120).
pub(super) fn update_task_protection(twin: &Twin, req: &r::UpdateTaskProtection) -> Result<Value, ApiError> {
    let snap = snapshot_of(twin, req.cluster.as_deref())?;
    let ids = batch(req.tasks.as_deref(), "tasks", UPDATE_PROTECTION_BATCH)?;
    if ids.is_empty() {
        return Err(ApiError::invalid("tasks: name 1 to 10 tasks"));
    }
    let enabled = req
        .protection_enabled
        .ok_or_else(|| ApiError::invalid("protectionEnabled is required"))?;
    let minutes = req.expires_in_minutes.unwrap_or(DEFAULT_PROTECTION_MINUTES);
    if !PROTECTION_MINUTES.contains(&minutes) {
        return Err(ApiError::invalid("expiresInMinutes must be between 1 and 2880"));
    }
    let expires_in = Duration::from_secs(minutes.unsigned_abs() * 60);
    Ok(protections(&snap, &ids, |arn| {
        twin.set_task_protection(arn, enabled, expires_in)
    }))
}

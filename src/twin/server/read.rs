//! The reads, each answered from the twin's state in place, and what they share: the cluster check, pages, batches
//! and describes by ARN or name.

use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{ContainerInstance, Snapshot, TaskStatus};

use super::error::ApiError;
use super::request as r;

/// The request's cluster must be the twin's (by name or ARN); absent means `default`, as in ECS.
pub(super) fn check_cluster(snap: &Snapshot, cluster: Option<&str>) -> Result<(), ApiError> {
    let asked = cluster.unwrap_or("default");
    let name = asked.rsplit('/').next().unwrap_or(asked);
    if name == snap.cluster || Some(asked) == snap.cluster_arn.as_deref() {
        Ok(())
    } else {
        Err(ApiError::cluster_not_found())
    }
}

/// One page of `items` under `key`, per `maxResults` (1..=100, default 100) and the opaque `nextToken` (an offset),
/// with the `nextToken` of the next page while there is one.
fn page<T: Serialize>(
    key: &str,
    items: Vec<T>,
    max_results: Option<i64>,
    next_token: Option<&str>,
) -> Result<Value, ApiError> {
    let max = match max_results {
        None => 100,
        Some(n @ 1..=100) => n as usize,
        Some(_) => return Err(ApiError::invalid("maxResults must be between 1 and 100")),
    };
    let start = match next_token {
        None => 0,
        Some(t) => t
            .strip_prefix("twin-offset-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| ApiError::invalid("invalid nextToken"))?,
    };
    let end = (start + max).min(items.len());
    let total = items.len();
    let chosen: Vec<T> = items.into_iter().skip(start).take(end - start).collect();
    let mut out = json!({ key: chosen });
    if end < total {
        out["nextToken"] = json!(format!("twin-offset-{end}"));
    }
    Ok(out)
}

/// The ids of a batch call, at most `limit`.
pub(super) fn batch(ids: Option<&[String]>, key: &str, limit: usize) -> Result<Vec<String>, ApiError> {
    let ids = ids.unwrap_or_default();
    if ids.len() > limit {
        return Err(ApiError::invalid(format!("{key} can have at most {limit} items")));
    }
    Ok(ids.to_vec())
}

pub(super) fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Matches a name or an ARN against an ARN whose last segment is the name.
pub(super) fn names(arn: &str, asked: &str) -> bool {
    arn == asked || arn.rsplit('/').next() == Some(asked)
}

/// Items named by `ids` (ARN or last ARN segment), in request order, and a `MISSING` failure for the rest.
fn describe<T: Serialize>(ids: &[String], items: &[T], arn: impl Fn(&T) -> &String) -> (Vec<Value>, Vec<Value>) {
    let mut by_name: std::collections::HashMap<&str, &T> = std::collections::HashMap::with_capacity(items.len() * 2);
    for item in items {
        let a = arn(item).as_str();
        by_name.insert(a.rsplit('/').next().unwrap_or(a), item);
        by_name.insert(a, item);
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for id in ids {
        match by_name.get(id.as_str()) {
            Some(i) => found.push(to_value(i)),
            None => failures.push(json!({"arn": id, "reason": "MISSING"})),
        }
    }
    (found, failures)
}

/// The cluster's ARN: as the snapshot has it, else built from an instance's ARN (same account and Region).
fn cluster_arn(snap: &Snapshot) -> String {
    snap.cluster_arn.clone().unwrap_or_else(|| {
        let prefix = snap
            .container_instances
            .first()
            .and_then(|i| i.container_instance_arn.split(":container-instance/").next())
            .unwrap_or("arn:aws:ecs:us-east-1:000000000000");
        format!("{prefix}:cluster/{}", snap.cluster)
    })
}

/// The cluster as `DescribeClusters` shows it.
fn cluster_view(snap: &Snapshot) -> Value {
    let live = |status: TaskStatus| snap.tasks.iter().filter(|t| t.last_status == status).count();
    json!({
        "clusterArn": cluster_arn(snap),
        "clusterName": snap.cluster,
        "status": "ACTIVE",
        "registeredContainerInstancesCount": snap.container_instances.len(),
        "runningTasksCount": live(TaskStatus::Running),
        "pendingTasksCount": live(TaskStatus::Pending),
        "activeServicesCount": snap.services.iter().filter(|s| s.status == "ACTIVE").count(),
    })
}

pub(super) fn list_clusters(snap: &Snapshot, req: &r::ListClusters) -> Result<Value, ApiError> {
    page(
        "clusterArns",
        vec![cluster_arn(snap)],
        req.max_results,
        req.next_token.as_deref(),
    )
}

pub(super) fn describe_clusters(snap: &Snapshot, req: &r::DescribeClusters) -> Result<Value, ApiError> {
    let asked = match req.clusters.as_deref() {
        None | Some([]) => vec!["default".to_owned()],
        Some(asked) => asked.to_vec(),
    };
    let arn = cluster_arn(snap);
    let (found, failures): (Vec<&String>, Vec<&String>) = asked.iter().partition(|a| **a == snap.cluster || **a == arn);
    Ok(json!({
        "clusters": found.iter().map(|_| cluster_view(snap)).collect::<Vec<_>>(),
        "failures": failures.iter().map(|a| json!({"arn": a, "reason": "MISSING"})).collect::<Vec<_>>(),
    }))
}

/// The task groups on an instance (for `task:group` in a filter).
fn groups<'a>(snap: &'a Snapshot, i: &ContainerInstance) -> Vec<&'a str> {
    snap.tasks
        .iter()
        .filter(|t| t.is_live() && t.container_instance_arn.as_deref() == Some(i.container_instance_arn.as_str()))
        .filter_map(|t| t.group.as_deref())
        .collect()
}

pub(super) fn list_container_instances(snap: &Snapshot, req: &r::ListContainerInstances) -> Result<Value, ApiError> {
    check_cluster(snap, req.cluster.as_deref())?;
    let status = req.status.as_deref();
    let filter = match req.filter.as_deref() {
        None | Some("") => None,
        Some(text) => {
            Some(crate::placement::cql::parse(text).map_err(|e| ApiError::invalid(format!("filter {text:?}: {e}")))?)
        }
    };
    let arns: Vec<&String> = snap
        .container_instances
        .iter()
        .filter(|i| status.is_none_or(|s| i.status.as_str() == s))
        .filter(|i| {
            filter.as_ref().is_none_or(|f| {
                let groups = groups(snap, i);
                f.eval(&crate::placement::Facts {
                    instance: i,
                    running: i.running_tasks_count,
                    groups: &groups,
                })
            })
        })
        .map(|i| &i.container_instance_arn)
        .collect();
    page(
        "containerInstanceArns",
        arns,
        req.max_results,
        req.next_token.as_deref(),
    )
}

pub(super) fn list_tags_for_resource(snap: &Snapshot, req: &r::ListTagsForResource) -> Result<Value, ApiError> {
    let arn = req
        .resource_arn
        .as_deref()
        .ok_or_else(|| ApiError::invalid("resourceArn is required"))?;
    let tags = snap
        .container_instances
        .iter()
        .find(|i| i.container_instance_arn == arn)
        .map(|i| &i.tags)
        .or_else(|| snap.services.iter().find(|s| s.service_arn == arn).map(|s| &s.tags))
        .or_else(|| snap.tasks.iter().find(|t| t.task_arn == arn).map(|t| &t.tags))
        .map(to_value)
        .or_else(|| (arn == cluster_arn(snap)).then(|| json!([])))
        .ok_or_else(|| ApiError::invalid("The specified resource is not found."))?;
    Ok(json!({"tags": tags}))
}

pub(super) fn list_attributes(snap: &Snapshot, req: &r::ListAttributes) -> Result<Value, ApiError> {
    check_cluster(snap, req.cluster.as_deref())?;
    match req.target_type.as_deref() {
        Some("container-instance") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "targetType {other} is not container-instance"
            )))
        }
        None => return Err(ApiError::invalid("targetType is required: container-instance")),
    }
    let name = req.attribute_name.as_deref();
    let value = req.attribute_value.as_deref();
    if value.is_some() && name.is_none() {
        return Err(ApiError::invalid("attributeValue needs attributeName"));
    }
    let all: Vec<Value> = snap
        .container_instances
        .iter()
        .flat_map(|i| {
            i.attributes
                .iter()
                .filter(|a| name.is_none_or(|n| a.name == n))
                .filter(|a| value.is_none_or(|v| a.value.as_deref() == Some(v)))
                .map(|a| {
                    let mut v = json!({
                        "name": a.name,
                        "targetType": "container-instance",
                        "targetId": i.container_instance_arn,
                    });
                    if let Some(value) = &a.value {
                        v["value"] = json!(value);
                    }
                    v
                })
        })
        .collect();
    page("attributes", all, req.max_results, req.next_token.as_deref())
}

pub(super) fn list_services(snap: &Snapshot, req: &r::ListServices) -> Result<Value, ApiError> {
    check_cluster(snap, req.cluster.as_deref())?;
    let arns: Vec<&String> = snap.services.iter().map(|s| &s.service_arn).collect();
    page("serviceArns", arns, req.max_results, req.next_token.as_deref())
}

pub(super) fn list_tasks(snap: &Snapshot, req: &r::ListTasks) -> Result<Value, ApiError> {
    check_cluster(snap, req.cluster.as_deref())?;
    let instance = req.container_instance.as_deref();
    let service = req.service_name.as_deref();
    let family = req.family.as_deref();
    let started_by = req.started_by.as_deref();
    let desired = req.desired_status.as_deref().unwrap_or("RUNNING");
    let arns: Vec<&String> = snap
        .tasks
        .iter()
        .filter(|t| {
            t.desired_status.as_str() == desired || (desired == "RUNNING" && t.desired_status == TaskStatus::Pending)
        })
        .filter(|t| instance.is_none_or(|i| t.container_instance_arn.as_deref().is_some_and(|a| names(a, i))))
        .filter(|t| service.is_none_or(|s| t.service_name() == Some(s.rsplit('/').next().unwrap_or(s))))
        .filter(|t| {
            family.is_none_or(|f| {
                t.task_definition_arn
                    .rsplit('/')
                    .next()
                    .and_then(|d| d.split(':').next())
                    == Some(f)
            })
        })
        .filter(|t| started_by.is_none_or(|s| t.started_by.as_deref() == Some(s)))
        .map(|t| &t.task_arn)
        .collect();
    page("taskArns", arns, req.max_results, req.next_token.as_deref())
}

pub(super) fn describe_container_instances(
    snap: &Snapshot,
    req: &r::DescribeContainerInstances,
) -> Result<Value, ApiError> {
    check_cluster(snap, req.cluster.as_deref())?;
    let ids = batch(req.container_instances.as_deref(), "containerInstances", 100)?;
    let (found, failures) = describe(&ids, &snap.container_instances, |i| &i.container_instance_arn);
    Ok(json!({"containerInstances": found, "failures": failures}))
}

pub(super) fn describe_tasks(snap: &Snapshot, req: &r::DescribeTasks) -> Result<Value, ApiError> {
    check_cluster(snap, req.cluster.as_deref())?;
    let ids = batch(req.tasks.as_deref(), "tasks", 100)?;
    let (found, failures) = describe(&ids, &snap.tasks, |t| &t.task_arn);
    Ok(json!({"tasks": found, "failures": failures}))
}

pub(super) fn describe_services(snap: &Snapshot, req: &r::DescribeServices) -> Result<Value, ApiError> {
    check_cluster(snap, req.cluster.as_deref())?;
    let ids = batch(req.services.as_deref(), "services", 10)?;
    let (found, failures) = describe(&ids, &snap.services, |s| &s.service_arn);
    Ok(json!({"services": found, "failures": failures}))
}

pub(super) fn describe_task_definition(snap: &Snapshot, req: &r::DescribeTaskDefinition) -> Result<Value, ApiError> {
    let asked = req
        .task_definition
        .as_deref()
        .ok_or_else(|| ApiError::invalid("taskDefinition is required"))?;
    let td = snap
        .task_definitions
        .iter()
        .find(|d| names(&d.task_definition_arn, asked))
        .ok_or_else(|| ApiError::new("ClientException", "Unable to describe task definition."))?;
    Ok(json!({"taskDefinition": to_value(td), "tags": []}))
}

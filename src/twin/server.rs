//! The twin behind ECS's JSON 1.1 protocol over HTTP (`twin serve`): `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`, JSON bodies in ECS's camelCase shapes, timestamps
//! as epoch seconds, errors as `{"__type": …, "message": …}` with HTTP 400 and an `x-amzn-ErrorType` header.
//!
//! Served: every read and write an ECS tool makes on an EC2 cluster's instances, services and tasks (ListClusters,
//! DescribeClusters, List/DescribeContainerInstances with `status` and a cluster-query-language `filter`,
//! UpdateContainerInstancesState, List/DescribeServices, UpdateService with `forceNewDeployment` and
//! `desiredCount`, List/DescribeTasks with their filters, StopTask, DescribeTaskDefinition, ListTagsForResource,
//! ListAttributes, PutAttributes, Get/UpdateTaskProtection), with AWS's pagination (`maxResults` 1..=100, opaque
//! `nextToken`) and batch limits (100 instances or tasks per describe or protection read, 10 services, 10 instances
//! per state update, attributes per put or tasks per protection update). Any
//! other operation answers `UnknownOperationException` naming it. The scheduler advances on its own clock: `speed`
//! simulated seconds per wall-clock second.
//!
//! Throttling by token buckets at ECS's documented rates (optional), and fault injection ([`Faults`]): internal
//! errors, added latency, mutations applied but answered with a 500 (a lost response), and describes that report an
//! item in `failures[]`.
//!
//! CloudWatch's `GetMetricData` for Container Insights' instance metrics is served on the same port (see
//! [`super::cloudwatch`]), so `AWS_ENDPOINT_URL_ECS` and `AWS_ENDPOINT_URL_CLOUDWATCH` can both point at the twin.
//!
//! Endpoints that are not AWS's, for tests and tools: `GET /__twin/snapshot` (the current state in the snapshot
//! format), `GET /__twin/calls` (how many calls of each operation were served), `GET /__twin/faults` (how many
//! throttles and injected faults, by kind) and `GET /__twin/stats` (the twin's clock, tasks started and stopped,
//! placement failures and floor violations).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

pub use crate::ecs::limit::Rates;
use crate::ecs::limit::{BucketKind, Buckets};
use crate::ecs::{EcsApi, EcsError, InstanceState};
use crate::model::{Snapshot, TaskStatus};

use super::Twin;

/// The `X-Amz-Target` prefix of ECS's operations.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// How the served twin runs.
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    /// Simulated seconds per wall-clock second (1.0 is real time).
    pub speed: f64,
    /// Token buckets per ECS's documented rates, scaled (`None`: no throttling).
    pub throttle: Option<Rates>,
    /// Faults injected into answers.
    pub faults: Faults,
    /// Seeds the choice of which calls get a fault.
    pub seed: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            speed: 1.0,
            throttle: None,
            faults: Faults::default(),
            seed: 1,
        }
    }
}

/// Faults the served twin injects, each as a share (0..=1) of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Calls answered with a 500 `ServerException` without being applied (ECS's own internal errors).
    pub error_rate: f64,
    /// Added to every answer.
    pub latency: Duration,
    /// Mutations applied but answered with a 500, as if the response were lost.
    pub drop_mutation_responses: f64,
    /// Describe calls that report their last item in `failures[]` as `MISSING` (an item that went away between the
    /// list and the describe, or a partial answer): the observation is incomplete.
    pub describe_failures: f64,
    /// GetTaskProtection calls that report their last task in `failures[]` as `MISSING` (a protection read that
    /// failed for one task): the observation is incomplete.
    pub protection_failures: f64,
}

struct Shared {
    twin: Arc<Twin>,
    calls: Mutex<BTreeMap<String, u64>>,
    /// Injected faults and throttles, by kind.
    faults_served: Mutex<BTreeMap<&'static str, u64>>,
    buckets: Option<Buckets>,
    faults: Faults,
    rng: Mutex<fastrand::Rng>,
}

impl Shared {
    fn count(&self, kind: &'static str) {
        if let Ok(mut f) = self.faults_served.lock() {
            *f.entry(kind).or_default() += 1;
        }
    }

    /// True for a share `p` of calls, drawn from the seeded generator.
    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().map(|mut r| r.f64() < p).unwrap_or(false)
    }
}

/// Moves the last described item of an answer into `failures[]` as `MISSING`.
fn fail_last_item(answer: &mut Value) {
    for (key, arn_key) in [
        ("containerInstances", "containerInstanceArn"),
        ("tasks", "taskArn"),
        ("services", "serviceArn"),
        ("protectedTasks", "taskArn"),
    ] {
        let Some(item) = answer.get_mut(key).and_then(Value::as_array_mut).and_then(Vec::pop) else {
            continue;
        };
        let arn = item.get(arn_key).cloned().unwrap_or(Value::Null);
        if let Some(failures) = answer.get_mut("failures").and_then(Value::as_array_mut) {
            failures.push(json!({"arn": arn, "reason": "MISSING"}));
        }
    }
}

/// An AWS-shaped error.
struct ApiError {
    code: &'static str,
    message: String,
}

impl ApiError {
    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            code: "InvalidParameterException",
            message: message.into(),
        }
    }
}

impl From<EcsError> for ApiError {
    fn from(e: EcsError) -> Self {
        match e {
            EcsError::Invalid(m) | EcsError::NotFound(m) => ApiError::invalid(m),
            EcsError::Throttled(m) => ApiError {
                code: "ThrottlingException",
                message: m,
            },
            EcsError::Unknown(m) | EcsError::Unavailable(m) | EcsError::Incomplete(m) => ApiError {
                code: "ServerException",
                message: m,
            },
            EcsError::Config(c) => ApiError {
                code: "ServerException",
                message: c.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = if self.code == "ServerException" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        let body = json!({"__type": self.code, "message": self.message}).to_string();
        (
            status,
            [
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amzn-errortype", self.code),
            ],
            body,
        )
            .into_response()
    }
}

/// The router serving `twin`.
pub fn router(twin: Arc<Twin>, config: ServeConfig) -> Router {
    let shared = Arc::new(Shared {
        twin,
        calls: Mutex::new(BTreeMap::new()),
        faults_served: Mutex::new(BTreeMap::new()),
        buckets: config.throttle.map(Buckets::new),
        faults: config.faults,
        rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
    });
    Router::new()
        .route("/", post(handle))
        .route(super::cloudwatch::PATH, post(metric_data))
        .route("/__twin/snapshot", get(snapshot))
        .route("/__twin/calls", get(calls))
        .route("/__twin/faults", get(faults))
        .route("/__twin/stats", get(stats))
        .with_state(shared)
}

/// Serves until the listener fails; the twin's scheduler advances in the background.
pub async fn serve(twin: Arc<Twin>, listener: tokio::net::TcpListener, config: ServeConfig) -> std::io::Result<()> {
    let clock = Arc::clone(&twin);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            clock.advance(Duration::from_secs_f64(config.speed.max(0.0)));
        }
    });
    axum::serve(listener, router(twin, config)).await
}

/// CloudWatch's `GetMetricData` (RPC v2 CBOR), counted with the ECS calls.
async fn metric_data(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Ok(mut calls) = shared.calls.lock() {
        *calls.entry("GetMetricData".to_owned()).or_default() += 1;
    }
    shared.twin.read(|snap| super::cloudwatch::get_metric_data(snap, &body))
}

async fn snapshot(State(shared): State<Arc<Shared>>) -> Response {
    let body = serde_json::to_string(&shared.twin.snapshot()).unwrap_or_default();
    ([("content-type", "application/json")], body).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let body = json!({"now": shared.twin.now(), "stats": shared.twin.stats()});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    let faults = shared.faults_served.lock().map(|c| c.clone()).unwrap_or_default();
    ([("content-type", "application/json")], json!(faults).to_string()).into_response()
}

async fn calls(State(shared): State<Arc<Shared>>) -> Response {
    let calls = shared.calls.lock().map(|c| c.clone()).unwrap_or_default();
    ([("content-type", "application/json")], json!(calls).to_string()).into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return ApiError {
            code: "UnknownOperationException",
            message: format!("unknown target {target:?}"),
        }
        .into_response();
    };
    if let Ok(mut calls) = shared.calls.lock() {
        *calls.entry(operation.to_owned()).or_default() += 1;
    }
    if !shared.faults.latency.is_zero() {
        tokio::time::sleep(shared.faults.latency).await;
    }
    if let Some(buckets) = &shared.buckets {
        if buckets.try_take(BucketKind::of(operation)).is_err() {
            shared.count("throttled");
            return ApiError {
                code: "ThrottlingException",
                message: "Rate exceeded".into(),
            }
            .into_response();
        }
    }
    let mutation = MUTATIONS.contains(&operation);
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return ApiError::invalid(format!("malformed JSON: {e}")).into_response(),
        }
    };
    if shared.chance(shared.faults.error_rate) {
        shared.count("internal-error");
        return ApiError {
            code: "ServerException",
            message: "injected fault: internal error, nothing was applied".into(),
        }
        .into_response();
    }
    let mut result = dispatch(&shared.twin, operation, &request).await;
    if operation.starts_with("Describe") && shared.chance(shared.faults.describe_failures) {
        if let Ok(answer) = &mut result {
            fail_last_item(answer);
            shared.count("describe-failure");
        }
    }
    if operation == "GetTaskProtection" && shared.chance(shared.faults.protection_failures) {
        if let Ok(answer) = &mut result {
            fail_last_item(answer);
            shared.count("protection-failure");
        }
    }
    if mutation && result.is_ok() && shared.chance(shared.faults.drop_mutation_responses) {
        shared.count("dropped-response");
        // The mutation happened; the caller is told nothing useful, as when a response is lost.
        return ApiError {
            code: "ServerException",
            message: "injected fault: the response was dropped after the change was applied".into(),
        }
        .into_response();
    }
    match result {
        Ok(mut v) => {
            to_wire(&mut v);
            ([("content-type", "application/x-amz-json-1.1")], v.to_string()).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// ECS's JSON protocol sends timestamps as epoch seconds; the model writes RFC 3339.
fn to_wire(v: &mut Value) {
    const TIMESTAMPS: [&str; 9] = [
        "createdAt",
        "startedAt",
        "stoppingAt",
        "stoppedAt",
        "registeredAt",
        "updatedAt",
        "expirationDate",
        "pullStartedAt",
        "pullStoppedAt",
    ];
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if let (true, Value::String(s)) = (TIMESTAMPS.contains(&k.as_str()), &*child) {
                    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                        #[allow(clippy::cast_precision_loss)] // epoch milliseconds fit an f64 exactly
                        let secs = t.timestamp_millis() as f64 / 1000.0;
                        *child = json!(secs);
                    }
                } else {
                    to_wire(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_wire),
        _ => {}
    }
}

fn string<'a>(req: &'a Value, key: &str) -> Option<&'a str> {
    req.get(key).and_then(Value::as_str)
}

fn strings(req: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid(format!("{key} must be strings")))
            })
            .collect(),
        Some(_) => Err(ApiError::invalid(format!("{key} must be a list"))),
    }
}

/// The request's cluster must be the twin's (by name or ARN); absent means `default`, as in ECS.
fn check_cluster(snap: &Snapshot, req: &Value) -> Result<(), ApiError> {
    let asked = string(req, "cluster").unwrap_or("default");
    let name = asked.rsplit('/').next().unwrap_or(asked);
    if name == snap.cluster || Some(asked) == snap.cluster_arn.as_deref() {
        Ok(())
    } else {
        Err(ApiError {
            code: "ClusterNotFoundException",
            message: "Cluster not found.".into(),
        })
    }
}

/// One page of `items` per `maxResults` (1..=100, default 100) and the opaque `nextToken` (an offset).
fn page(items: Vec<String>, req: &Value) -> Result<Value, ApiError> {
    let max = match req.get("maxResults") {
        None | Some(Value::Null) => 100,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => return Err(ApiError::invalid("maxResults must be between 1 and 100")),
        },
    };
    let start = match string(req, "nextToken") {
        None => 0,
        Some(t) => t
            .strip_prefix("twin-offset-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| ApiError::invalid("invalid nextToken"))?,
    };
    let end = (start + max).min(items.len());
    let mut out = json!({"arns": items[start..end]});
    if end < items.len() {
        out["nextToken"] = json!(format!("twin-offset-{end}"));
    }
    Ok(out)
}

/// One page of any JSON items (the same offsets as [`page`]).
fn page_values(items: Vec<Value>, req: &Value, key: &str) -> Result<Value, ApiError> {
    let indexes: Vec<String> = (0..items.len()).map(|k| k.to_string()).collect();
    let mut out = page(indexes, req)?;
    let chosen: Vec<Value> = out["arns"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str()?.parse::<usize>().ok())
                .map(|k| items[k].clone())
                .collect()
        })
        .unwrap_or_default();
    if let Some(map) = out.as_object_mut() {
        map.remove("arns");
    }
    out[key] = json!(chosen);
    Ok(out)
}

/// The task groups on an instance (for `task:group` in a filter).
fn groups<'a>(snap: &'a Snapshot, i: &crate::model::ContainerInstance) -> Vec<&'a str> {
    snap.tasks
        .iter()
        .filter(|t| t.is_live() && t.container_instance_arn.as_deref() == Some(i.container_instance_arn.as_str()))
        .filter_map(|t| t.group.as_deref())
        .collect()
}

/// Names the list key of a page (`taskArns`, …).
fn listed(mut page: Value, key: &str) -> Value {
    if let Some(arns) = page.as_object_mut().and_then(|m| m.remove("arns")) {
        page[key] = arns;
    }
    page
}

/// Matches a name or an ARN against an ARN whose last segment is the name.
fn names(arn: &str, asked: &str) -> bool {
    arn == asked || arn.rsplit('/').next() == Some(asked)
}

fn batch(req: &Value, key: &str, limit: usize) -> Result<Vec<String>, ApiError> {
    let ids = strings(req, key)?;
    if ids.len() > limit {
        return Err(ApiError::invalid(format!("{key} can have at most {limit} items")));
    }
    Ok(ids)
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Every ECS operation the twin serves (CloudWatch's GetMetricData has its own path).
pub const SERVED: [&str; 17] = [
    "ListClusters",
    "DescribeClusters",
    "ListContainerInstances",
    "DescribeContainerInstances",
    "UpdateContainerInstancesState",
    "ListServices",
    "DescribeServices",
    "UpdateService",
    "ListTasks",
    "DescribeTasks",
    "StopTask",
    "DescribeTaskDefinition",
    "ListTagsForResource",
    "ListAttributes",
    "PutAttributes",
    "GetTaskProtection",
    "UpdateTaskProtection",
];

/// `GetTaskProtection` answers at most this many tasks a call, `UpdateTaskProtection` changes at most this many
/// (API reference: "A list of up to 100 task IDs", "A list of up to 10 task IDs").
const GET_PROTECTION_BATCH: usize = 100;
const UPDATE_PROTECTION_BATCH: usize = 10;
/// `expiresInMinutes`: 1 minute to 48 hours, 2 hours when not given
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>).
const PROTECTION_MINUTES: std::ops::RangeInclusive<u64> = 1..=2880;
const DEFAULT_PROTECTION_MINUTES: u64 = 120;

async fn dispatch(twin: &Twin, operation: &str, req: &Value) -> Result<Value, ApiError> {
    if !SERVED.contains(&operation) {
        return Err(ApiError {
            code: "UnknownOperationException",
            message: format!("the twin does not serve {operation}"),
        });
    }
    match operation {
        op if MUTATIONS.contains(&op) => mutate(twin, operation, req).await,
        "GetTaskProtection" => get_task_protection(twin, req),
        _ => twin.read(|snap| read(snap, operation, req)),
    }
}

/// The operations that change the twin.
const MUTATIONS: [&str; 5] = [
    "StopTask",
    "UpdateService",
    "UpdateContainerInstancesState",
    "PutAttributes",
    "UpdateTaskProtection",
];

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

/// `GetTaskProtection`: each named task's protection at the twin's clock; unknown tasks come back in `failures[]` as
/// `MISSING`, tasks of no service as `TASK_NOT_VALID`.
fn get_task_protection(twin: &Twin, req: &Value) -> Result<Value, ApiError> {
    let snap = twin.snapshot();
    check_cluster(&snap, req)?;
    let ids = batch(req, "tasks", GET_PROTECTION_BATCH)?;
    if ids.is_empty() {
        return Err(ApiError::invalid("tasks: name 1 to 100 tasks"));
    }
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for id in &ids {
        let answer = task_arn_of(&snap, id)
            .ok_or(super::ProtectionFailure::Missing)
            .and_then(|arn| twin.task_protection(&arn));
        match answer {
            Ok(p) => protected.push(protection_view(&p)),
            Err(f) => failures.push(json!({"arn": id, "reason": f.reason()})),
        }
    }
    Ok(json!({"protectedTasks": protected, "failures": failures}))
}

/// `UpdateTaskProtection`: `protectionEnabled` for up to 10 tasks, for `expiresInMinutes` (1–2880, default 120).
fn update_task_protection(twin: &Twin, snap: &Snapshot, req: &Value) -> Result<Value, ApiError> {
    let ids = batch(req, "tasks", UPDATE_PROTECTION_BATCH)?;
    if ids.is_empty() {
        return Err(ApiError::invalid("tasks: name 1 to 10 tasks"));
    }
    let enabled = req
        .get("protectionEnabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::invalid("protectionEnabled is required"))?;
    let minutes = match req.get("expiresInMinutes").filter(|v| !v.is_null()) {
        None => DEFAULT_PROTECTION_MINUTES,
        Some(v) => v
            .as_u64()
            .filter(|m| PROTECTION_MINUTES.contains(m))
            .ok_or_else(|| ApiError::invalid("expiresInMinutes must be between 1 and 2880"))?,
    };
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for id in &ids {
        let answer = task_arn_of(snap, id)
            .ok_or(super::ProtectionFailure::Missing)
            .and_then(|arn| twin.set_task_protection(&arn, enabled, Duration::from_secs(minutes * 60)));
        match answer {
            Ok(p) => protected.push(protection_view(&p)),
            Err(f) => failures.push(json!({"arn": id, "reason": f.reason()})),
        }
    }
    Ok(json!({"protectedTasks": protected, "failures": failures}))
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

/// A read, answered from the twin's state in place.
fn read(snap: &Snapshot, operation: &str, req: &Value) -> Result<Value, ApiError> {
    if !matches!(
        operation,
        "DescribeTaskDefinition" | "ListClusters" | "DescribeClusters" | "ListTagsForResource"
    ) {
        check_cluster(snap, req)?;
    }
    match operation {
        "ListClusters" => Ok(listed(page(vec![cluster_arn(snap)], req)?, "clusterArns")),
        "DescribeClusters" => {
            let asked = strings(req, "clusters")?;
            let asked = if asked.is_empty() {
                vec!["default".to_owned()]
            } else {
                asked
            };
            let arn = cluster_arn(snap);
            let (found, failures): (Vec<&String>, Vec<&String>) =
                asked.iter().partition(|a| **a == snap.cluster || **a == arn);
            Ok(json!({
                "clusters": found.iter().map(|_| cluster_view(snap)).collect::<Vec<_>>(),
                "failures": failures.iter().map(|a| json!({"arn": a, "reason": "MISSING"})).collect::<Vec<_>>(),
            }))
        }
        "ListContainerInstances" => {
            let status = string(req, "status");
            let filter = match string(req, "filter") {
                None | Some("") => None,
                Some(text) => Some(
                    crate::placement::cql::parse(text)
                        .map_err(|e| ApiError::invalid(format!("filter {text:?}: {e}")))?,
                ),
            };
            let arns = snap
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
                .map(|i| i.container_instance_arn.clone())
                .collect();
            Ok(listed(page(arns, req)?, "containerInstanceArns"))
        }
        "ListTagsForResource" => {
            let arn = string(req, "resourceArn").ok_or_else(|| ApiError::invalid("resourceArn is required"))?;
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
        "ListAttributes" => {
            match string(req, "targetType") {
                Some("container-instance") => {}
                other => {
                    return Err(ApiError::invalid(format!(
                        "targetType {other:?} is not container-instance"
                    )))
                }
            }
            let name = string(req, "attributeName");
            let value = string(req, "attributeValue");
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
            page_values(all, req, "attributes")
        }
        "ListServices" => {
            let arns = snap.services.iter().map(|s| s.service_arn.clone()).collect();
            Ok(listed(page(arns, req)?, "serviceArns"))
        }
        "ListTasks" => {
            let instance = string(req, "containerInstance");
            let service = string(req, "serviceName");
            let family = string(req, "family");
            let started_by = string(req, "startedBy");
            let desired = string(req, "desiredStatus").unwrap_or("RUNNING");
            let arns = snap
                .tasks
                .iter()
                .filter(|t| {
                    t.desired_status.as_str() == desired
                        || (desired == "RUNNING" && t.desired_status == TaskStatus::Pending)
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
                .map(|t| t.task_arn.clone())
                .collect();
            Ok(listed(page(arns, req)?, "taskArns"))
        }
        "DescribeContainerInstances" => {
            let ids = batch(req, "containerInstances", 100)?;
            let (found, failures) = describe(&ids, &snap.container_instances, |i| &i.container_instance_arn);
            Ok(json!({"containerInstances": found, "failures": failures}))
        }
        "DescribeTasks" => {
            let ids = batch(req, "tasks", 100)?;
            let (found, failures) = describe(&ids, &snap.tasks, |t| &t.task_arn);
            Ok(json!({"tasks": found, "failures": failures}))
        }
        "DescribeServices" => {
            let ids = batch(req, "services", 10)?;
            let (found, failures) = describe(&ids, &snap.services, |s| &s.service_arn);
            Ok(json!({"services": found, "failures": failures}))
        }
        "DescribeTaskDefinition" => {
            let asked = string(req, "taskDefinition").ok_or_else(|| ApiError::invalid("taskDefinition is required"))?;
            let td = snap
                .task_definitions
                .iter()
                .find(|d| names(&d.task_definition_arn, asked))
                .ok_or_else(|| ApiError {
                    code: "ClientException",
                    message: "Unable to describe task definition.".into(),
                })?;
            Ok(json!({"taskDefinition": to_value(td), "tags": []}))
        }
        other => Err(ApiError {
            code: "UnknownOperationException",
            message: format!("the twin does not serve {other}"),
        }),
    }
}

/// A mutation, applied through the twin's `EcsApi`.
async fn mutate(twin: &Twin, operation: &str, req: &Value) -> Result<Value, ApiError> {
    let snap = twin.snapshot();
    check_cluster(&snap, req)?;
    match operation {
        "StopTask" => {
            let asked = string(req, "task").ok_or_else(|| ApiError::invalid("task is required"))?;
            let arn = snap
                .tasks
                .iter()
                .find(|t| names(&t.task_arn, asked))
                .map(|t| t.task_arn.clone())
                .ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
            twin.stop_task(&arn, string(req, "reason").unwrap_or("")).await?;
            let task = twin.snapshot().tasks.into_iter().find(|t| t.task_arn == arn);
            Ok(json!({"task": to_value(&task)}))
        }
        "UpdateService" => {
            let asked = string(req, "service").ok_or_else(|| ApiError::invalid("service is required"))?;
            let name = snap
                .services
                .iter()
                .find(|s| names(&s.service_arn, asked) || s.service_name == asked)
                .map(|s| s.service_name.clone())
                .ok_or_else(|| ApiError {
                    code: "ServiceNotFoundException",
                    message: "Service not found.".into(),
                })?;
            if let Some(n) = req.get("desiredCount").filter(|v| !v.is_null()) {
                let n = n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| ApiError::invalid("desiredCount must be a non-negative integer"))?;
                twin.set_desired_count(&name, n)?;
            }
            if req.get("forceNewDeployment").and_then(Value::as_bool) == Some(true) {
                twin.force_new_deployment(&name).await?;
            }
            let service = twin.snapshot().services.into_iter().find(|s| s.service_name == name);
            Ok(json!({"service": to_value(&service)}))
        }
        "UpdateContainerInstancesState" => {
            let ids = batch(req, "containerInstances", 10)?;
            let to = match string(req, "status") {
                Some("DRAINING") => InstanceState::Draining,
                Some("ACTIVE") => InstanceState::Active,
                other => return Err(ApiError::invalid(format!("status {other:?} is not ACTIVE or DRAINING"))),
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
            let now = twin.snapshot();
            let found: Vec<Value> = now
                .container_instances
                .iter()
                .filter(|i| updated.contains(&i.container_instance_arn))
                .map(to_value)
                .collect();
            Ok(json!({"containerInstances": found, "failures": failures}))
        }
        "UpdateTaskProtection" => update_task_protection(twin, &snap, req),
        "PutAttributes" => {
            let attributes = match req.get("attributes") {
                Some(Value::Array(a)) if !a.is_empty() && a.len() <= 10 => a.clone(),
                _ => return Err(ApiError::invalid("attributes must hold 1 to 10 attributes")),
            };
            for a in &attributes {
                let name = string(a, "name").ok_or_else(|| ApiError::invalid("an attribute needs a name"))?;
                if string(a, "targetType").is_some_and(|t| t != "container-instance") {
                    return Err(ApiError::invalid("targetType must be container-instance"));
                }
                let target = string(a, "targetId").ok_or_else(|| ApiError::invalid("an attribute needs a targetId"))?;
                let arn = snap
                    .container_instances
                    .iter()
                    .find(|i| names(&i.container_instance_arn, target))
                    .map(|i| i.container_instance_arn.clone())
                    .ok_or_else(|| ApiError {
                        code: "TargetNotFoundException",
                        message: format!("Could not find {target}."),
                    })?;
                twin.put_attribute(&arn, name, string(a, "value"))?;
            }
            Ok(json!({"attributes": attributes}))
        }
        other => Err(ApiError {
            code: "UnknownOperationException",
            message: format!("the twin does not serve {other}"),
        }),
    }
}

/// Items named by `ids` (ARN or last ARN segment), in request order, and a `MISSING` failure for the rest.
fn describe<T: serde::Serialize>(ids: &[String], items: &[T], arn: impl Fn(&T) -> &String) -> (Vec<Value>, Vec<Value>) {
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

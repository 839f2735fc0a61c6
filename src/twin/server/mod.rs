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
//! per state update, attributes per put or tasks per protection update). Any other operation answers
//! `UnknownOperationException` naming it. The scheduler advances on its own clock: `speed` simulated seconds per
//! wall-clock second.
//!
//! Each body is parsed once, by the one table of operations (`request::OPERATIONS`), into a typed request: a body
//! that is not JSON, or a member of the wrong type, answers `SerializationException` naming the member. Then
//! `read.rs` answers the reads from the twin's state in place, `write.rs` applies the mutations and answers task
//! protection, and `error.rs` gives every error AWS's shape.
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
//! throttles and injected faults, by kind), `GET /__twin/stats` (the twin's clock, tasks started and stopped,
//! placement failures and floor violations) and `GET /__twin/mutations` (every mutation applied, in order: when by
//! the wall clock, the operation and its request, who sent it, and whether its response was dropped), for an
//! invariant checker that trusts only what ECS saw. `POST /__twin/instances` registers a container instance (the
//! body in the snapshot format), as an Auto Scaling scale-out would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

pub use crate::ecs::limit::Rates;
use crate::ecs::limit::{BucketKind, Buckets};

use super::Twin;
use error::ApiError;
use request::{Kind, Request};

mod error;
mod read;
mod request;
mod write;

/// The largest request body the twin reads: far above any ECS request (a describe of 100 tasks is a few KB). A
/// larger one is answered `RequestEntityTooLargeException` (HTTP 413) without being read further.
pub const MAX_BODY: usize = 1024 * 1024;

/// The `X-Amz-Target` prefix of ECS's operations.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The name of every ECS operation the twin serves (its `X-Amz-Target` after [`TARGET_PREFIX`]), for clients and
/// tests that must cover them all.
pub fn operations() -> impl Iterator<Item = &'static str> {
    request::OPERATIONS.iter().map(|o| o.name)
}

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
    /// Every mutation applied, in order (`GET /__twin/mutations`).
    mutations: Mutex<Vec<Value>>,
}

impl Shared {
    fn count(&self, kind: &'static str) {
        if let Ok(mut f) = self.faults_served.lock() {
            *f.entry(kind).or_default() += 1;
        }
    }

    /// Records an applied mutation: when (the wall clock, which the controller's records also use), what, and who
    /// sent it (`user-agent`; the SDKs' `amz-sdk-invocation-id` is the same for every retry of one call).
    fn journal(&self, operation: &str, headers: &HeaderMap, body: &[u8], response_dropped: bool) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Ok(mut journal) = self.mutations.lock() {
            let entry = json!({
                "seq": journal.len(),
                "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "operation": operation,
                "request": request,
                "userAgent": header("user-agent"),
                "invocationId": header("amz-sdk-invocation-id"),
                "responseDropped": response_dropped,
            });
            journal.push(entry);
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

/// The router serving `twin`.
pub fn router(twin: Arc<Twin>, config: ServeConfig) -> Router {
    let shared = Arc::new(Shared {
        twin,
        calls: Mutex::new(BTreeMap::new()),
        faults_served: Mutex::new(BTreeMap::new()),
        buckets: config.throttle.map(Buckets::new),
        faults: config.faults,
        rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
        mutations: Mutex::new(Vec::new()),
    });
    Router::new()
        .route("/", post(handle))
        .route(super::cloudwatch::PATH, post(metric_data))
        .route("/__twin/snapshot", get(snapshot))
        .route("/__twin/calls", get(calls))
        .route("/__twin/faults", get(faults))
        .route("/__twin/stats", get(stats))
        .route("/__twin/mutations", get(mutations))
        .route("/__twin/instances", post(register_instance))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// Serves until the listener fails; the twin's scheduler advances in the background. Should the scheduler stop (a
/// bug in the twin: it panics rather than skip its passes), serving stops too, with the scheduler's message, so a
/// client never talks to a cluster whose time stands still.
pub async fn serve(twin: Arc<Twin>, listener: tokio::net::TcpListener, config: ServeConfig) -> std::io::Result<()> {
    use std::future::IntoFuture as _;
    let clock = Arc::clone(&twin);
    // The clock runs on a thread of its own: a pass over a large cluster takes a while, and requests go on being
    // answered meanwhile, from the view the last pass or write published.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _stop_on_return = StopOnDrop(Arc::clone(&stop));
    let mut scheduler = tokio::task::spawn_blocking(move || {
        let second = Duration::from_secs(1);
        let mut next = std::time::Instant::now() + second;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
            next = std::time::Instant::now().max(next) + second;
            clock.advance(Duration::from_secs_f64(config.speed.max(0.0)));
            clock.publish();
        }
    });
    let served = tokio::select! {
        served = axum::serve(listener, router(twin, config)).into_future() => served,
        stopped = &mut scheduler => {
            let why = match stopped {
                Err(e) if e.is_panic() => {
                    let panic = e.into_panic();
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default()
                }
                _ => "it ended".to_owned(),
            };
            Err(std::io::Error::other(format!("the twin's scheduler stopped: {why}")))
        }
    };
    served
}

/// Stops the clock's thread when [`serve`] returns, however it returns.
struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
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

/// A scale-out: the body is one container instance in the snapshot format, registered now, empty and ACTIVE.
async fn register_instance(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let instance: crate::model::ContainerInstance = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return ApiError::invalid(format!("not a container instance: {e}")).into_response(),
    };
    let twin = Arc::clone(&shared.twin);
    let registered = tokio::task::spawn_blocking(move || {
        let registered = twin.register_instance(instance);
        twin.publish();
        registered
    })
    .await;
    match registered {
        Ok(Ok(())) => ([("content-type", "application/json")], "{}").into_response(),
        Ok(Err(e)) => ApiError::invalid(e.to_string()).into_response(),
        Err(e) => ApiError::server(format!("the twin failed to register the instance: {e}")).into_response(),
    }
}

async fn mutations(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared
        .mutations
        .lock()
        .map(|m| Value::Array(m.clone()).to_string())
        .unwrap_or_default();
    ([("content-type", "application/json")], body).into_response()
}

async fn calls(State(shared): State<Arc<Shared>>) -> Response {
    let calls = shared.calls.lock().map(|c| c.clone()).unwrap_or_default();
    ([("content-type", "application/json")], json!(calls).to_string()).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::too_large(format!("the request body is larger than {MAX_BODY} bytes")).into_response()
        }
        Err(e) => return ApiError::serialization(format!("the request body cannot be read: {e}")).into_response(),
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let name = target.strip_prefix(TARGET_PREFIX);
    if let (Some(name), Ok(mut calls)) = (name, shared.calls.lock()) {
        *calls.entry(name.to_owned()).or_default() += 1;
    }
    let Some(operation) = name.and_then(request::operation) else {
        return ApiError::unknown_operation(target).into_response();
    };
    if !shared.faults.latency.is_zero() {
        tokio::time::sleep(shared.faults.latency).await;
    }
    if let Some(buckets) = &shared.buckets {
        if buckets.try_take(BucketKind::of(operation.name)).is_err() {
            shared.count("throttled");
            return ApiError::new("ThrottlingException", "Rate exceeded").into_response();
        }
    }
    let request = match operation.parse(&body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    if shared.chance(shared.faults.error_rate) {
        shared.count("internal-error");
        return ApiError::server("injected fault: internal error, nothing was applied").into_response();
    }
    let mut result = match operation.kind {
        // Reads are answered from the published view and never wait.
        Kind::Read | Kind::Describe => dispatch(&shared.twin, request).await,
        // Writes and protection reads take the twin's state, which a scheduler pass may hold for a while: they wait
        // on a blocking thread, so the reads keep being answered meanwhile.
        Kind::Mutation | Kind::ProtectionRead => {
            let twin = Arc::clone(&shared.twin);
            let runtime = tokio::runtime::Handle::current();
            let mutation = operation.kind == Kind::Mutation;
            tokio::task::spawn_blocking(move || {
                let result = runtime.block_on(dispatch(&twin, request));
                if mutation && result.is_ok() {
                    // Read-your-writes: the next read sees this change even if a scheduler pass starts before it.
                    twin.publish();
                }
                result
            })
            .await
            .unwrap_or_else(|e| Err(ApiError::server(format!("the twin failed to apply the request: {e}"))))
        }
    };
    let (item_failures, counted) = match operation.kind {
        Kind::Describe => (shared.faults.describe_failures, "describe-failure"),
        Kind::ProtectionRead => (shared.faults.protection_failures, "protection-failure"),
        Kind::Read | Kind::Mutation => (0.0, ""),
    };
    if shared.chance(item_failures) {
        if let Ok(answer) = &mut result {
            fail_last_item(answer);
            shared.count(counted);
        }
    }
    if operation.kind == Kind::Mutation && result.is_ok() {
        let dropped = shared.chance(shared.faults.drop_mutation_responses);
        shared.journal(operation.name, &headers, &body, dropped);
        if dropped {
            shared.count("dropped-response");
            // The mutation happened; the caller is told nothing useful, as when a response is lost.
            return ApiError::server("injected fault: the response was dropped after the change was applied")
                .into_response();
        }
    }
    match result {
        Ok(mut v) => {
            to_wire(&mut v);
            ([("content-type", "application/x-amz-json-1.1")], v.to_string()).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Answers one parsed request from the twin.
async fn dispatch(twin: &Twin, request: Request) -> Result<Value, ApiError> {
    match request {
        Request::ListClusters(r) => twin.read(|s| read::list_clusters(s, &r)),
        Request::DescribeClusters(r) => twin.read(|s| read::describe_clusters(s, &r)),
        Request::ListContainerInstances(r) => twin.read(|s| read::list_container_instances(s, &r)),
        Request::DescribeContainerInstances(r) => twin.read(|s| read::describe_container_instances(s, &r)),
        Request::ListServices(r) => twin.read(|s| read::list_services(s, &r)),
        Request::DescribeServices(r) => twin.read(|s| read::describe_services(s, &r)),
        Request::ListTasks(r) => twin.read(|s| read::list_tasks(s, &r)),
        Request::DescribeTasks(r) => twin.read(|s| read::describe_tasks(s, &r)),
        Request::DescribeTaskDefinition(r) => twin.read(|s| read::describe_task_definition(s, &r)),
        Request::ListTagsForResource(r) => twin.read(|s| read::list_tags_for_resource(s, &r)),
        Request::ListAttributes(r) => twin.read(|s| read::list_attributes(s, &r)),
        Request::GetTaskProtection(r) => write::get_task_protection(twin, &r),
        Request::UpdateContainerInstancesState(r) => write::update_container_instances_state(twin, &r).await,
        Request::UpdateService(r) => write::update_service(twin, &r).await,
        Request::StopTask(r) => write::stop_task(twin, &r).await,
        Request::PutAttributes(r) => write::put_attributes(twin, &r),
        Request::UpdateTaskProtection(r) => write::update_task_protection(twin, &r),
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

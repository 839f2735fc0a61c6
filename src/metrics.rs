//! What `run` exposes over HTTP: Prometheus text at `/metrics`, `/healthz` (the process serves) and `/readyz`
//! (the last cycle or lease round reached ECS and the ledger).

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    /// Cycles by cluster and result (`ok` or an error label).
    pub cycles: Family<Labels, Counter>,
    /// Actions by kind and outcome (`sent`, `not_sent`, `done`, `failed`, `abandoned`).
    pub actions: Family<Labels, Counter>,
    /// The balance score (coefficient of variation) by cluster, as last observed.
    pub score: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Planner skips by reason label.
    pub skips: Family<Labels, Counter>,
    /// Observations refused by ECS throttling, and incomplete ones.
    pub api_errors: Family<Labels, Counter>,
    /// ECS HTTP attempts by operation, retries included.
    pub api_calls: Family<Labels, Counter>,
    /// ECS attempts answered `ThrottlingException`, by operation.
    pub api_throttles: Family<Labels, Counter>,
    /// 1 while this replica holds a fresh lease.
    pub lease_held: Family<Labels, Gauge>,
    /// Policy reloads by result: `ok` (a new revision in force), `invalid` (a revision that did not validate; the
    /// last good one stays), `fetch-failed` (a git source could not be fetched; the last good one stays).
    pub policy_reloads: Family<Labels, Counter>,
    /// 1 for the revision and name of the policy in force; nothing while none has ever been good.
    policy_info: Family<Labels, Gauge>,
    /// The labels of the one `policy_info` series.
    policy_in_force: std::sync::Mutex<Option<Labels>>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ecs_rebalancer");
        let cycles = Family::default();
        let actions = Family::default();
        let score = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let skips = Family::default();
        let api_errors = Family::default();
        let api_calls = Family::default();
        let api_throttles = Family::default();
        let lease_held = Family::default();
        let policy_reloads = Family::default();
        let policy_info = Family::default();
        registry.register("cycles", "Controller cycles by result", cycles.clone());
        registry.register("actions", "Actions by kind and outcome", actions.clone());
        registry.register(
            "score",
            "Balance score (coefficient of variation) per cluster",
            score.clone(),
        );
        registry.register("skips", "Candidate moves the planner skipped, by reason", skips.clone());
        registry.register(
            "api_errors",
            "ECS and CloudWatch errors seen while observing, by kind",
            api_errors.clone(),
        );
        registry.register(
            "lease_held",
            "1 while this replica holds a fresh lease",
            lease_held.clone(),
        );
        registry.register(
            "api_calls",
            "ECS HTTP attempts by operation, retries included",
            api_calls.clone(),
        );
        registry.register(
            "api_throttles",
            "ECS attempts answered ThrottlingException",
            api_throttles.clone(),
        );
        registry.register("policy_reloads", "Policy reloads by result", policy_reloads.clone());
        registry.register(
            "policy_info",
            "The revision and name of the policy in force",
            policy_info.clone(),
        );
        Metrics {
            registry,
            cycles,
            actions,
            score,
            skips,
            api_errors,
            api_calls,
            api_throttles,
            lease_held,
            policy_reloads,
            policy_info,
            policy_in_force: std::sync::Mutex::new(None),
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts one ECS attempt (the SDK adapter's call hook).
    pub fn count_call(&self, operation: &str, throttled: bool) {
        let labels = vec![("operation", operation.to_owned())];
        self.api_calls.get_or_create(&labels).inc();
        if throttled {
            self.api_throttles.get_or_create(&labels).inc();
        }
    }

    /// Counts one policy reload by its result (`ok`, `invalid`, `fetch-failed`).
    pub fn count_reload(&self, result: &str) {
        self.policy_reloads
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// Makes `ecs_rebalancer_policy_info{revision,name}` name the policy in force (one series: the previous one is
    /// removed).
    pub fn set_policy(&self, revision: &str, name: &str) {
        let labels = vec![("revision", revision.to_owned()), ("name", name.to_owned())];
        let mut in_force = self
            .policy_in_force
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = in_force.replace(labels.clone()) {
            self.policy_info.remove(&old);
        }
        self.policy_info.get_or_create(&labels).set(1);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `/metrics`, `/healthz`, `/readyz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn render(State(m): State<Arc<Metrics>>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

async fn ready(State(m): State<Arc<Metrics>>) -> Response {
    if m.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no cycle or lease round has succeeded yet\n",
        )
            .into_response()
    }
}

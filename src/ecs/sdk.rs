//! `EcsApi` over `aws-sdk-ecs`: the only module that imports it (`convert.rs` maps its types to the model's).
//!
//! Observing reads every page (`maxResults` 100, the SDK's paginators following `nextToken`) and describes in ECS's
//! batches (100 instances or tasks, 10 services), with tags; the scale-in protection of every service task is read
//! with `GetTaskProtection` (100 tasks a call); task definitions are described once per distinct ARN. Each page and
//! batch is paced first. A snapshot is complete or it is not returned: a failed call or any `failures[]` entry is an
//! error, so the cycle acts on nothing.
//! Mutations are sent once; an error whose outcome is unknown (timeout, dispatch failure, 5xx) is reported as
//! [`EcsError::Unknown`] for the reconcile loop to settle by re-reading ECS, never retried here. A read that fails the
//! same way is [`EcsError::Unavailable`] (nothing changed), and a configuration the SDK cannot work with (Region,
//! credentials, endpoint) is [`EcsError::Config`]. Failed calls are classified by [`crate::aws::call`], and the
//! classified call is kept in the error ([`EcsError::call`]).

mod convert;

use std::collections::BTreeSet;
use std::future::Future;

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types as sdk;
use aws_sdk_ecs::Client;
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::Utc;

use crate::aws::call::{self, Failure};
use crate::model::{self, Snapshot};

use super::limit::{BucketKind, Buckets, Rates};
use super::{EcsApi, EcsError, InstanceState};

/// Mutations are sent exactly once: the SDK's standard retries (which re-send on throttling, timeouts and 5xx) are
/// switched off for them, because a retried StopTask or UpdateService can repeat an action that already happened
/// (docs/ecs.md: API limits). An unknown outcome goes back to the reconcile loop, which re-reads ECS.
fn once() -> aws_sdk_ecs::config::Builder {
    aws_sdk_ecs::config::Builder::default().retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
}

/// ECS's page size and batch limits (docs/ecs.md: API limits).
const PAGE: i32 = 100;
const DESCRIBE_BATCH: usize = 100;
const SERVICES_BATCH: usize = 10;
/// `GetTaskProtection` takes "a list of up to 100 task IDs or full ARN entries" (API reference).
const PROTECTION_BATCH: usize = 100;

/// The share of ECS's read buckets the adapter spends by default: the buckets are shared by every caller in the
/// account and Region, and half leaves room for deploy pipelines, consoles and autoscalers.
pub const DEFAULT_READ_SHARE: f64 = 0.5;

/// How far an observation has got, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// `instances`, `tasks`, `task protection`, `services` or `task definitions`.
    pub what: &'static str,
    /// Listed or described so far.
    pub done: usize,
    /// Known once listing is over (`None` while listing).
    pub total: Option<usize>,
}

type ProgressFn = Box<dyn Fn(Progress) + Send + Sync>;

/// Hears every HTTP attempt the SDK makes (retries included): the operation, and whether ECS throttled it.
pub type CallHook = std::sync::Arc<dyn Fn(&str, bool) + Send + Sync>;

/// An SDK interceptor that reports each attempt to a [`CallHook`] (for `api_calls_total` / `api_throttles_total`).
struct CountCalls(CallHook);

impl std::fmt::Debug for CountCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountCalls")
    }
}

impl aws_sdk_ecs::config::Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "ecs-rebalancer-count-calls"
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_ecs::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_ecs::config::RuntimeComponents,
        cfg: &mut aws_sdk_ecs::config::ConfigBag,
    ) -> Result<(), aws_sdk_ecs::error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name());
        // ECS's JSON protocol names the error in `x-amzn-ErrorType` or in the body's `__type`.
        let throttled = context.response().is_some_and(|r| {
            r.status().as_u16() == 400
                && (r
                    .headers()
                    .get("x-amzn-errortype")
                    .is_some_and(|t| t.starts_with("ThrottlingException"))
                    || r.body().bytes().is_some_and(|b| {
                        b.windows(b"ThrottlingException".len())
                            .any(|w| w == b"ThrottlingException")
                    }))
        });
        (self.0)(operation, throttled);
        Ok(())
    }
}

/// An ECS cluster reached through the AWS SDK.
pub struct SdkEcs {
    client: Client,
    cluster: String,
    /// Task definitions are immutable by ARN: each is described once for the life of the adapter.
    definitions: std::sync::Mutex<std::collections::HashMap<String, model::TaskDefinition>>,
    /// Client-side pacing of reads (`None`: unpaced; the SDK's retries still handle throttling).
    reads: Option<Buckets>,
    progress: Option<ProgressFn>,
}

impl SdkEcs {
    /// Reads paced to [`DEFAULT_READ_SHARE`] of ECS's buckets.
    pub fn new(client: Client, cluster: &str) -> SdkEcs {
        SdkEcs {
            client,
            cluster: cluster.to_owned(),
            definitions: std::sync::Mutex::new(std::collections::HashMap::new()),
            reads: Some(Buckets::new(Rates::ECS.share(DEFAULT_READ_SHARE))),
            progress: None,
        }
    }

    /// A client from a loaded AWS configuration; `endpoint_url` overrides the ECS endpoint only, as the AWS CLI's
    /// `--endpoint-url` does (other services keep theirs).
    pub fn from_conf(conf: &aws_config::SdkConfig, endpoint_url: Option<&str>, cluster: &str) -> SdkEcs {
        SdkEcs::from_conf_counted(conf, endpoint_url, cluster, None)
    }

    /// As [`SdkEcs::from_conf`], with every HTTP attempt reported to `on_call`.
    pub fn from_conf_counted(
        conf: &aws_config::SdkConfig,
        endpoint_url: Option<&str>,
        cluster: &str,
        on_call: Option<CallHook>,
    ) -> SdkEcs {
        let mut builder = aws_sdk_ecs::config::Builder::from(conf);
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        if let Some(hook) = on_call {
            builder = builder.interceptor(CountCalls(hook));
        }
        SdkEcs::new(Client::from_conf(builder.build()), cluster)
    }

    /// Paces reads to `share` (0..=1) of ECS's read buckets; `None` does not pace.
    pub fn read_share(mut self, share: Option<f64>) -> SdkEcs {
        self.reads = share.map(|s| Buckets::new(Rates::ECS.share(s)));
        self
    }

    /// Called as pages and batches come in.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> SdkEcs {
        self.progress = Some(Box::new(f));
        self
    }

    async fn pace(&self, operation: &str) {
        if let Some(buckets) = &self.reads {
            buckets.take(BucketKind::of(operation)).await;
        }
    }

    fn report(&self, what: &'static str, done: usize, total: Option<usize>) {
        if let Some(f) = &self.progress {
            f(Progress { what, done, total });
        }
    }

    /// Every page of a list call, from the SDK's paginator: each page paced before it is fetched, progress heard
    /// after it. `arns` reads a page's ARNs and whether it names a next page.
    async fn every_page<O, E>(
        &self,
        operation: &'static str,
        what: &'static str,
        mut pages: PaginationStream<Result<O, SdkError<E, HttpResponse>>>,
        arns: impl Fn(&O) -> (&[String], bool),
    ) -> Result<Vec<String>, EcsError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut all = Vec::new();
        loop {
            self.pace(operation).await;
            let Some(page) = pages.next().await else {
                return Ok(all);
            };
            let page = page.map_err(|e| ecs_error(operation, e))?;
            let (items, more) = arns(&page);
            all.extend_from_slice(items);
            self.report(what, all.len(), None);
            if !more {
                return Ok(all);
            }
        }
    }

    /// `ids` in batches of `size`, each paced and then sent by `describe`, progress heard after each.
    async fn in_batches<T, F, Fut>(
        &self,
        operation: &'static str,
        what: &'static str,
        ids: &[String],
        size: usize,
        describe: F,
    ) -> Result<Vec<T>, EcsError>
    where
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, EcsError>>,
    {
        let mut all = Vec::with_capacity(ids.len());
        let mut done = 0;
        for batch in ids.chunks(size) {
            self.pace(operation).await;
            all.extend(describe(batch.to_vec()).await?);
            done += batch.len();
            self.report(what, done, Some(ids.len()));
        }
        Ok(all)
    }

    /// Task scale-in protection of every service task (standalone tasks cannot have it: ECS answers them
    /// `TASK_NOT_VALID`), in batches of 100. The planner never stops a protected task, so this read is part of the
    /// complete-or-nothing observation: a failed call, a `failures[]` entry, or a task left unanswered is
    /// [`EcsError::Incomplete`] and the cycle acts on nothing. Only protected tasks are kept.
    async fn protection(&self, tasks: &[model::Task]) -> Result<Vec<model::ProtectedTask>, EcsError> {
        let service_tasks: Vec<String> = tasks
            .iter()
            .filter(|t| t.service_name().is_some())
            .map(|t| t.task_arn.clone())
            .collect();
        let id = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
        let observed_at = Utc::now();
        let (client, c) = (&self.client, self.cluster.as_str());
        let operation = "GetTaskProtection";
        self.in_batches(
            operation,
            "task protection",
            &service_tasks,
            PROTECTION_BATCH,
            |batch| async move {
                let out = client
                    .get_task_protection()
                    .cluster(c)
                    .set_tasks(Some(batch.clone()))
                    .send()
                    .await
                    .map_err(|e| ecs_error(operation, e))?;
                failures(operation, out.failures())?;
                let answered: BTreeSet<String> = out
                    .protected_tasks()
                    .iter()
                    .filter_map(|p| p.task_arn())
                    .map(id)
                    .collect();
                if let Some(unanswered) = batch.iter().find(|arn| !answered.contains(&id(arn))) {
                    return Err(EcsError::Incomplete(
                        format!("{operation}: no answer for {unanswered}").into(),
                    ));
                }
                Ok(out
                    .protected_tasks()
                    .iter()
                    .filter(|p| p.protection_enabled())
                    .map(|p| convert::protected_task(p, observed_at))
                    .collect())
            },
        )
        .await
    }

    /// The task definitions the tasks and services use, each described once for the life of the adapter.
    async fn task_definitions(
        &self,
        tasks: &[model::Task],
        services: &[model::Service],
    ) -> Result<Vec<model::TaskDefinition>, EcsError> {
        let definitions: BTreeSet<&String> = tasks
            .iter()
            .map(|t| &t.task_definition_arn)
            .chain(services.iter().filter_map(|s| s.task_definition.as_ref()))
            .collect();
        let mut task_definitions = Vec::with_capacity(definitions.len());
        let wanted = definitions.len();
        for arn in definitions {
            self.report("task definitions", task_definitions.len(), Some(wanted));
            if let Some(td) = self.cached(arn) {
                task_definitions.push(td);
                continue;
            }
            self.pace("DescribeTaskDefinition").await;
            let out = self
                .client
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| ecs_error("DescribeTaskDefinition", e).about(&format!("task definition {arn}")))?;
            if let Some(td) = out.task_definition() {
                let td = convert::task_definition(td);
                if let Ok(mut cache) = self.definitions.lock() {
                    cache.insert(arn.clone(), td.clone());
                }
                task_definitions.push(td);
            }
        }
        Ok(task_definitions)
    }

    fn cached(&self, arn: &str) -> Option<model::TaskDefinition> {
        self.definitions.lock().ok().and_then(|c| c.get(arn).cloned())
    }

    /// Whether the cluster exists, with one cheap read (`ListContainerInstances`, one result, a permission the
    /// controller has anyway), so that a wrong `--cluster` is refused before anything is written anywhere.
    pub async fn check_cluster(&self) -> Result<(), EcsError> {
        self.pace("ListContainerInstances").await;
        let out = self
            .client
            .list_container_instances()
            .cluster(&self.cluster)
            .max_results(1)
            .send()
            .await;
        match out.map_err(|e| ecs_error("ListContainerInstances", e)) {
            Ok(_) => Ok(()),
            Err(EcsError::NotFound(why)) => {
                let text = format!(
                    "cluster {:?} ({why}): check --cluster or ECS_CLUSTER, and AWS_REGION",
                    self.cluster
                );
                Err(EcsError::NotFound(why.reworded(text)))
            }
            Err(e) => Err(e),
        }
    }
}

/// The operations that change something: only these can end with an unknown outcome (docs/ecs.md: API limits: re-read,
/// never re-send). A read that fails is a failed read.
const MUTATIONS: [&str; 3] = ["StopTask", "UpdateService", "UpdateContainerInstancesState"];

/// A failed ECS call in ECS's terms, by its error code; the classified call is kept in the error.
fn ecs_error<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> EcsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let call = call::classify(operation, e);
    let failed = |call: call::CallError| match MUTATIONS.contains(&operation) {
        true => EcsError::Unknown(call.into()),
        false => EcsError::Unavailable(call.into()),
    };
    match call.failure() {
        Failure::Config(config) => EcsError::Config(config.clone()),
        Failure::NoAnswer => failed(call),
        Failure::Service { code, .. } => match code.as_str() {
            "ThrottlingException" | "TooManyRequestsException" => EcsError::Throttled(call.into()),
            "ClusterNotFoundException" | "ServiceNotFoundException" => EcsError::NotFound(call.into()),
            "InvalidParameterException" | "ClientException" | "ServiceNotActiveException" => {
                EcsError::Invalid(call.into())
            }
            _ if call.is_server_error() => failed(call),
            _ => EcsError::Invalid(call.into()),
        },
    }
}

fn failures(operation: &str, failures: &[sdk::Failure]) -> Result<(), EcsError> {
    match failures.first() {
        None => Ok(()),
        Some(f) => Err(EcsError::Incomplete(
            format!(
                "{operation}: {} failure(s), first {} {}",
                failures.len(),
                f.arn().unwrap_or("?"),
                f.reason().unwrap_or("?")
            )
            .into(),
        )),
    }
}

impl EcsApi for SdkEcs {
    async fn observe(&self) -> Result<Snapshot, EcsError> {
        let (client, c) = (&self.client, self.cluster.as_str());
        // Every page first; nothing is decided on a partial view.
        let instance_arns = self
            .every_page(
                "ListContainerInstances",
                "instances",
                client
                    .list_container_instances()
                    .cluster(c)
                    .max_results(PAGE)
                    .into_paginator()
                    .send(),
                |o| (o.container_instance_arns(), o.next_token().is_some()),
            )
            .await?;
        let task_arns = self
            .every_page(
                "ListTasks",
                "tasks",
                client.list_tasks().cluster(c).max_results(PAGE).into_paginator().send(),
                |o| (o.task_arns(), o.next_token().is_some()),
            )
            .await?;
        let service_arns = self
            .every_page(
                "ListServices",
                "services",
                client
                    .list_services()
                    .cluster(c)
                    .max_results(PAGE)
                    .into_paginator()
                    .send(),
                |o| (o.service_arns(), o.next_token().is_some()),
            )
            .await?;

        let operation = "DescribeContainerInstances";
        let container_instances = self
            .in_batches(
                operation,
                "instances",
                &instance_arns,
                DESCRIBE_BATCH,
                |batch| async move {
                    let out = client
                        .describe_container_instances()
                        .cluster(c)
                        .set_container_instances(Some(batch))
                        .include(sdk::ContainerInstanceField::Tags)
                        .send()
                        .await
                        .map_err(|e| ecs_error(operation, e))?;
                    failures(operation, out.failures())?;
                    Ok(out.container_instances().iter().map(convert::instance).collect())
                },
            )
            .await?;
        let operation = "DescribeTasks";
        let tasks = self
            .in_batches(operation, "tasks", &task_arns, DESCRIBE_BATCH, |batch| async move {
                let out = client
                    .describe_tasks()
                    .cluster(c)
                    .set_tasks(Some(batch))
                    .include(sdk::TaskField::Tags)
                    .send()
                    .await
                    .map_err(|e| ecs_error(operation, e))?;
                failures(operation, out.failures())?;
                Ok(out.tasks().iter().map(convert::task).collect())
            })
            .await?;
        let protected_tasks = self.protection(&tasks).await?;
        let operation = "DescribeServices";
        let services = self
            .in_batches(
                operation,
                "services",
                &service_arns,
                SERVICES_BATCH,
                |batch| async move {
                    let out = client
                        .describe_services()
                        .cluster(c)
                        .set_services(Some(batch))
                        .include(sdk::ServiceField::Tags)
                        .send()
                        .await
                        .map_err(|e| ecs_error(operation, e))?;
                    failures(operation, out.failures())?;
                    Ok(out.services().iter().map(convert::service).collect())
                },
            )
            .await?;
        let task_definitions = self.task_definitions(&tasks, &services).await?;
        let cluster_arn = tasks
            .iter()
            .find_map(|t| t.cluster_arn.clone())
            .or_else(|| services.iter().find_map(|s| s.cluster_arn.clone()));
        Ok(Snapshot {
            cluster: c.rsplit('/').next().unwrap_or(c).to_owned(),
            cluster_arn,
            captured_at: Some(Utc::now()),
            container_instances,
            tasks,
            services,
            task_definitions,
            utilization: Default::default(),
            protected_tasks,
        })
    }

    async fn stop_task(&self, task_arn: &str, reason: &str) -> Result<(), EcsError> {
        self.client
            .stop_task()
            .cluster(&self.cluster)
            .task(task_arn)
            .reason(reason)
            .customize()
            .config_override(once())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ecs_error("StopTask", e))
    }

    async fn force_new_deployment(&self, service: &str) -> Result<(), EcsError> {
        self.client
            .update_service()
            .cluster(&self.cluster)
            .service(service)
            .force_new_deployment(true)
            .customize()
            .config_override(once())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ecs_error("UpdateService", e))
    }

    async fn set_instance_state(&self, arn: &str, state: InstanceState) -> Result<(), EcsError> {
        let status = match state {
            InstanceState::Active => sdk::ContainerInstanceStatus::Active,
            InstanceState::Draining => sdk::ContainerInstanceStatus::Draining,
        };
        let out = self
            .client
            .update_container_instances_state()
            .cluster(&self.cluster)
            .container_instances(arn)
            .status(status)
            .customize()
            .config_override(once())
            .send()
            .await
            .map_err(|e| ecs_error("UpdateContainerInstancesState", e))?;
        match out.failures().first() {
            None => Ok(()),
            Some(f) => Err(EcsError::Invalid(
                format!(
                    "UpdateContainerInstancesState: {} {}",
                    f.arn().unwrap_or(arn),
                    f.reason().unwrap_or("?")
                )
                .into(),
            )),
        }
    }
}

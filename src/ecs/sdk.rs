//! `EcsApi` over `aws-sdk-ecs`: the only file that imports it.
//!
//! Observing reads every page (`maxResults` 100 and `nextToken`) and describes in ECS's batches (100 instances or
//! tasks, 10 services), with tags; the scale-in protection of every service task is read with `GetTaskProtection`
//! (100 tasks a call); task definitions are described once per distinct ARN. A snapshot is complete or it is not
//! returned: a failed call or any `failures[]` entry is an error, so the cycle acts on nothing.
//! Mutations are sent once; an error whose outcome is unknown (timeout, dispatch failure, 5xx) is reported as
//! [`EcsError::Unknown`] for the reconcile loop to settle by re-reading ECS, never retried here. A read that fails the
//! same way is [`EcsError::Unavailable`] (nothing changed), and a configuration the SDK cannot work with (Region,
//! credentials, endpoint) is [`EcsError::Config`].

use std::collections::BTreeSet;

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types as sdk;
use aws_sdk_ecs::Client;
use chrono::{DateTime, Utc};

use crate::model::{self, Snapshot};

use super::limit::{BucketKind, Buckets, Rates};
use super::{EcsApi, EcsError, InstanceState};

/// Mutations are sent exactly once: the SDK's standard retries (which re-send on throttling, timeouts and 5xx) are
/// switched off for them, because a retried StopTask or UpdateService can repeat an action that already happened
/// (ECS-SEMANTICS §3). An unknown outcome goes back to the reconcile loop, which re-reads ECS.
fn once() -> aws_sdk_ecs::config::Builder {
    aws_sdk_ecs::config::Builder::default().retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
}

/// ECS's page size and batch limits (ECS-SEMANTICS §4).
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
        let mut protected = Vec::new();
        let mut done = 0;
        for batch in service_tasks.chunks(PROTECTION_BATCH) {
            self.pace("GetTaskProtection").await;
            let out = self
                .client
                .get_task_protection()
                .cluster(&self.cluster)
                .set_tasks(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| classify("GetTaskProtection", e))?;
            failures("GetTaskProtection", out.failures())?;
            let answered: BTreeSet<String> = out
                .protected_tasks()
                .iter()
                .filter_map(|p| p.task_arn())
                .map(id)
                .collect();
            if let Some(unanswered) = batch.iter().find(|arn| !answered.contains(&id(arn))) {
                return Err(EcsError::Incomplete(format!(
                    "GetTaskProtection: no answer for {unanswered}"
                )));
            }
            protected.extend(
                out.protected_tasks()
                    .iter()
                    .filter(|p| p.protection_enabled())
                    .map(|p| protected_task(p, observed_at)),
            );
            done += batch.len();
            self.report("task protection", done, Some(service_tasks.len()));
        }
        Ok(protected)
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
        match out.map_err(|e| classify("ListContainerInstances", e)) {
            Ok(_) => Ok(()),
            Err(EcsError::NotFound(why)) => Err(EcsError::NotFound(format!(
                "cluster {:?} ({why}): check --cluster or ECS_CLUSTER, and AWS_REGION",
                self.cluster
            ))),
            Err(e) => Err(e),
        }
    }
}

/// The operations that change something: only these can end with an unknown outcome (ECS-SEMANTICS §3: re-read,
/// never re-send). A read that fails is a failed read.
const MUTATIONS: [&str; 3] = ["StopTask", "UpdateService", "UpdateContainerInstancesState"];

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(operation: &str, e: SdkError<E>) -> EcsError {
    let failed = |message: String| match MUTATIONS.contains(&operation) {
        true => EcsError::Unknown(message),
        false => EcsError::Unavailable(message),
    };
    match &e {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            let message = format!("{operation}: {code}: {}", service.err().message().unwrap_or(""));
            match code {
                "ThrottlingException" | "TooManyRequestsException" => EcsError::Throttled(message),
                "ClusterNotFoundException" | "ServiceNotFoundException" => EcsError::NotFound(message),
                "InvalidParameterException" | "ClientException" | "ServiceNotActiveException" => {
                    EcsError::Invalid(message)
                }
                _ if service.raw().status().is_server_error() => failed(message),
                _ => EcsError::Invalid(message),
            }
        }
        _ => match crate::aws::config_problem(&e) {
            Some(config) => EcsError::Config(config),
            None => failed(format!("{operation}: {}", crate::aws::describe(&e))),
        },
    }
}

fn time(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// Follows `nextToken` until the last page; `page` fetches one page from a token, `seen` hears the running count.
async fn all_pages<F, Fut>(mut page: F, seen: impl Fn(usize)) -> Result<Vec<String>, EcsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<String>, Option<String>), EcsError>>,
{
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (items, next) = page(token).await?;
        all.extend(items);
        seen(all.len());
        match next {
            Some(t) => token = Some(t),
            None => return Ok(all),
        }
    }
}

fn failures(operation: &str, failures: &[sdk::Failure]) -> Result<(), EcsError> {
    match failures.first() {
        None => Ok(()),
        Some(f) => Err(EcsError::Incomplete(format!(
            "{operation}: {} failure(s), first {} {}",
            failures.len(),
            f.arn().unwrap_or("?"),
            f.reason().unwrap_or("?")
        ))),
    }
}

impl EcsApi for SdkEcs {
    async fn observe(&self) -> Result<Snapshot, EcsError> {
        let c = &self.cluster;
        // Every page first; nothing is decided on a partial view.
        let client = &self.client;
        let instance_arns = all_pages(
            |token| async move {
                self.pace("ListContainerInstances").await;
                let out = client
                    .list_container_instances()
                    .cluster(c)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| classify("ListContainerInstances", e))?;
                Ok((out.container_instance_arns().to_vec(), owned(out.next_token())))
            },
            |n| self.report("instances", n, None),
        )
        .await?;
        let task_arns = all_pages(
            |token| async move {
                self.pace("ListTasks").await;
                let out = client
                    .list_tasks()
                    .cluster(c)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| classify("ListTasks", e))?;
                Ok((out.task_arns().to_vec(), owned(out.next_token())))
            },
            |n| self.report("tasks", n, None),
        )
        .await?;
        let service_arns = all_pages(
            |token| async move {
                self.pace("ListServices").await;
                let out = client
                    .list_services()
                    .cluster(c)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| classify("ListServices", e))?;
                Ok((out.service_arns().to_vec(), owned(out.next_token())))
            },
            |n| self.report("services", n, None),
        )
        .await?;

        let mut container_instances = Vec::with_capacity(instance_arns.len());
        for batch in instance_arns.chunks(DESCRIBE_BATCH) {
            self.pace("DescribeContainerInstances").await;
            let out = self
                .client
                .describe_container_instances()
                .cluster(c)
                .set_container_instances(Some(batch.to_vec()))
                .include(sdk::ContainerInstanceField::Tags)
                .send()
                .await
                .map_err(|e| classify("DescribeContainerInstances", e))?;
            failures("DescribeContainerInstances", out.failures())?;
            container_instances.extend(out.container_instances().iter().map(instance));
            self.report("instances", container_instances.len(), Some(instance_arns.len()));
        }
        let mut tasks = Vec::with_capacity(task_arns.len());
        for batch in task_arns.chunks(DESCRIBE_BATCH) {
            self.pace("DescribeTasks").await;
            let out = self
                .client
                .describe_tasks()
                .cluster(c)
                .set_tasks(Some(batch.to_vec()))
                .include(sdk::TaskField::Tags)
                .send()
                .await
                .map_err(|e| classify("DescribeTasks", e))?;
            failures("DescribeTasks", out.failures())?;
            tasks.extend(out.tasks().iter().map(task));
            self.report("tasks", tasks.len(), Some(task_arns.len()));
        }
        let protected_tasks = self.protection(&tasks).await?;
        let mut services = Vec::with_capacity(service_arns.len());
        for batch in service_arns.chunks(SERVICES_BATCH) {
            self.pace("DescribeServices").await;
            let out = self
                .client
                .describe_services()
                .cluster(c)
                .set_services(Some(batch.to_vec()))
                .include(sdk::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| classify("DescribeServices", e))?;
            failures("DescribeServices", out.failures())?;
            services.extend(out.services().iter().map(service));
            self.report("services", services.len(), Some(service_arns.len()));
        }
        let definitions: BTreeSet<String> = tasks
            .iter()
            .map(|t: &model::Task| t.task_definition_arn.clone())
            .chain(
                services
                    .iter()
                    .filter_map(|s: &model::Service| s.task_definition.clone()),
            )
            .collect();
        let mut task_definitions = Vec::with_capacity(definitions.len());
        let wanted = definitions.len();
        for arn in definitions {
            self.report("task definitions", task_definitions.len(), Some(wanted));
            if let Some(td) = self.cached(&arn) {
                task_definitions.push(td);
                continue;
            }
            self.pace("DescribeTaskDefinition").await;
            let out = self
                .client
                .describe_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(|e| classify("DescribeTaskDefinition", e))?;
            if let Some(td) = out.task_definition() {
                let td = task_definition(td);
                if let Ok(mut cache) = self.definitions.lock() {
                    cache.insert(arn.clone(), td.clone());
                }
                task_definitions.push(td);
            }
        }
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
            .map_err(|e| classify("StopTask", e))
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
            .map_err(|e| classify("UpdateService", e))
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
            .map_err(|e| classify("UpdateContainerInstancesState", e))?;
        match out.failures().first() {
            None => Ok(()),
            Some(f) => Err(EcsError::Invalid(format!(
                "UpdateContainerInstancesState: {} {}",
                f.arn().unwrap_or(arn),
                f.reason().unwrap_or("?")
            ))),
        }
    }
}

/// A protected task as ECS reported it. ECS turns `protectionEnabled` off itself when protection lapses, so the flag
/// is the truth at the observation; `expirationDate` is on ECS's clock. It is kept while it is still ahead of this
/// machine's clock; one already past here (a skewed clock, or `twin serve` on the snapshot's clock) is dropped
/// rather than let the planner take a task ECS calls protected for an unprotected one.
fn protected_task(p: &sdk::ProtectedTask, observed_at: DateTime<Utc>) -> model::ProtectedTask {
    model::ProtectedTask {
        task_arn: p.task_arn().unwrap_or_default().to_owned(),
        protection_enabled: true,
        expiration_date: time(p.expiration_date()).filter(|t| *t > observed_at),
    }
}

/// The SDK reports absent numbers as 0, so the resource's `type` says which value is meant.
fn resource(r: &sdk::Resource) -> model::Resource {
    let kind = r.r#type();
    model::Resource {
        name: r.name().unwrap_or_default().to_owned(),
        kind: owned(kind),
        integer_value: (kind == Some("INTEGER")).then(|| i64::from(r.integer_value())),
        long_value: (kind == Some("LONG")).then(|| r.long_value()),
        double_value: (kind == Some("DOUBLE")).then(|| r.double_value()),
        string_set_value: r.string_set_value.clone(),
    }
}

fn tags(t: &[sdk::Tag]) -> Vec<model::Tag> {
    t.iter()
        .map(|t| model::Tag {
            key: t.key().unwrap_or_default().to_owned(),
            value: t.value().unwrap_or_default().to_owned(),
        })
        .collect()
}

fn instance(i: &sdk::ContainerInstance) -> model::ContainerInstance {
    model::ContainerInstance {
        container_instance_arn: i.container_instance_arn().unwrap_or_default().to_owned(),
        ec2_instance_id: owned(i.ec2_instance_id()),
        status: model::InstanceStatus::from(i.status().unwrap_or("")),
        status_reason: owned(i.status_reason()),
        agent_connected: i.agent_connected(),
        registered_resources: i.registered_resources().iter().map(resource).collect(),
        remaining_resources: i.remaining_resources().iter().map(resource).collect(),
        attributes: i
            .attributes()
            .iter()
            .map(|a| model::Attribute {
                name: a.name().to_owned(),
                value: owned(a.value()),
            })
            .collect(),
        registered_at: time(i.registered_at()),
        version_info: i.version_info().map(|v| model::VersionInfo {
            agent_version: owned(v.agent_version()),
            agent_hash: owned(v.agent_hash()),
            docker_version: owned(v.docker_version()),
        }),
        running_tasks_count: u32::try_from(i.running_tasks_count()).unwrap_or(0),
        pending_tasks_count: u32::try_from(i.pending_tasks_count()).unwrap_or(0),
        capacity_provider_name: owned(i.capacity_provider_name()),
        version: (i.version() != 0).then_some(i.version()),
        tags: tags(i.tags()),
    }
}

fn protocol(p: Option<&sdk::TransportProtocol>) -> Option<model::Protocol> {
    p.map(|p| model::Protocol::from(p.as_str()))
}

fn port(p: Option<i32>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok())
}

fn task(t: &sdk::Task) -> model::Task {
    model::Task {
        task_arn: t.task_arn().unwrap_or_default().to_owned(),
        cluster_arn: owned(t.cluster_arn()),
        container_instance_arn: owned(t.container_instance_arn()),
        task_definition_arn: t.task_definition_arn().unwrap_or_default().to_owned(),
        group: owned(t.group()),
        started_by: owned(t.started_by()),
        last_status: model::TaskStatus::from(t.last_status().unwrap_or("")),
        desired_status: model::TaskStatus::from(t.desired_status().unwrap_or("")),
        launch_type: t.launch_type().map(|l| l.as_str().to_owned()),
        capacity_provider_name: owned(t.capacity_provider_name()),
        availability_zone: owned(t.availability_zone()),
        cpu: owned(t.cpu()),
        memory: owned(t.memory()),
        created_at: time(t.created_at()),
        started_at: time(t.started_at()),
        stopping_at: time(t.stopping_at()),
        stopped_at: time(t.stopped_at()),
        stopped_reason: owned(t.stopped_reason()),
        stop_code: t.stop_code().map(|s| s.as_str().to_owned()),
        version: (t.version() != 0).then_some(t.version()),
        containers: t
            .containers()
            .iter()
            .map(|c| model::Container {
                name: c.name().unwrap_or_default().to_owned(),
                container_arn: owned(c.container_arn()),
                last_status: owned(c.last_status()),
                cpu: owned(c.cpu()),
                memory: owned(c.memory()),
                memory_reservation: owned(c.memory_reservation()),
                network_bindings: c
                    .network_bindings()
                    .iter()
                    .map(|b| model::NetworkBinding {
                        bind_ip: owned(b.bind_ip()),
                        container_port: port(b.container_port()),
                        host_port: port(b.host_port()),
                        protocol: protocol(b.protocol()),
                        container_port_range: owned(b.container_port_range()),
                        host_port_range: owned(b.host_port_range()),
                    })
                    .collect(),
                gpu_ids: c.gpu_ids().to_vec(),
            })
            .collect(),
        tags: tags(t.tags()),
    }
}

fn service(s: &sdk::Service) -> model::Service {
    model::Service {
        service_arn: s.service_arn().unwrap_or_default().to_owned(),
        service_name: s.service_name().unwrap_or_default().to_owned(),
        cluster_arn: owned(s.cluster_arn()),
        status: s.status().unwrap_or_default().to_owned(),
        desired_count: u32::try_from(s.desired_count()).unwrap_or(0),
        running_count: u32::try_from(s.running_count()).unwrap_or(0),
        pending_count: u32::try_from(s.pending_count()).unwrap_or(0),
        launch_type: s.launch_type().map(|l| l.as_str().to_owned()),
        capacity_provider_strategy: s
            .capacity_provider_strategy()
            .iter()
            .map(|c| model::ecs::CapacityProviderStrategyItem {
                capacity_provider: c.capacity_provider().to_owned(),
                weight: u32::try_from(c.weight()).unwrap_or(0),
                base: u32::try_from(c.base()).unwrap_or(0),
            })
            .collect(),
        task_definition: owned(s.task_definition()),
        scheduling_strategy: s.scheduling_strategy().map_or(model::SchedulingStrategy::Replica, |x| {
            model::SchedulingStrategy::from(x.as_str())
        }),
        deployment_configuration: s.deployment_configuration().map(|d| model::DeploymentConfiguration {
            minimum_healthy_percent: d.minimum_healthy_percent().and_then(|v| u32::try_from(v).ok()),
            maximum_percent: d.maximum_percent().and_then(|v| u32::try_from(v).ok()),
            deployment_circuit_breaker: d
                .deployment_circuit_breaker()
                .map(|b| model::ecs::DeploymentCircuitBreaker {
                    enable: b.enable(),
                    rollback: b.rollback(),
                }),
        }),
        deployment_controller: s.deployment_controller().map(|d| model::ecs::DeploymentController {
            kind: d.r#type().as_str().to_owned(),
        }),
        placement_constraints: s
            .placement_constraints()
            .iter()
            .map(|p| model::PlacementConstraint {
                kind: model::PlacementConstraintType::from(p.r#type().map_or("", |t| t.as_str())),
                expression: owned(p.expression()),
            })
            .collect(),
        placement_strategy: s
            .placement_strategy()
            .iter()
            .map(|p| model::PlacementStrategy {
                kind: model::PlacementStrategyType::from(p.r#type().map_or("", |t| t.as_str())),
                field: owned(p.field()),
            })
            .collect(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| model::Deployment {
                id: d.id().unwrap_or_default().to_owned(),
                status: model::DeploymentStatus::from(d.status().unwrap_or("")),
                task_definition: owned(d.task_definition()),
                desired_count: u32::try_from(d.desired_count()).unwrap_or(0),
                running_count: u32::try_from(d.running_count()).unwrap_or(0),
                pending_count: u32::try_from(d.pending_count()).unwrap_or(0),
                failed_tasks: u32::try_from(d.failed_tasks()).unwrap_or(0),
                rollout_state: d.rollout_state().map(|r| model::RolloutState::from(r.as_str())),
                rollout_state_reason: owned(d.rollout_state_reason()),
                launch_type: d.launch_type().map(|l| l.as_str().to_owned()),
                created_at: time(d.created_at()),
                updated_at: time(d.updated_at()),
            })
            .collect(),
        created_at: time(s.created_at()),
        tags: tags(s.tags()),
        availability_zone_rebalancing: s.availability_zone_rebalancing().map(|a| a.as_str().to_owned()),
    }
}

fn task_definition(d: &sdk::TaskDefinition) -> model::TaskDefinition {
    model::TaskDefinition {
        task_definition_arn: d.task_definition_arn().unwrap_or_default().to_owned(),
        family: owned(d.family()),
        revision: u32::try_from(d.revision()).ok(),
        network_mode: d.network_mode().map(|m| model::NetworkMode::from(m.as_str())),
        container_definitions: d
            .container_definitions()
            .iter()
            .map(|c| model::ContainerDefinition {
                name: c.name().unwrap_or_default().to_owned(),
                image: owned(c.image()),
                cpu: u32::try_from(c.cpu()).unwrap_or(0),
                memory: c.memory().and_then(|v| u32::try_from(v).ok()),
                memory_reservation: c.memory_reservation().and_then(|v| u32::try_from(v).ok()),
                essential: c.essential(),
                port_mappings: c
                    .port_mappings()
                    .iter()
                    .map(|p| model::PortMapping {
                        container_port: port(p.container_port()),
                        host_port: port(p.host_port()),
                        protocol: protocol(p.protocol()),
                        container_port_range: owned(p.container_port_range()),
                    })
                    .collect(),
                resource_requirements: c
                    .resource_requirements()
                    .iter()
                    .map(|r| model::ecs::ResourceRequirement {
                        kind: r.r#type().as_str().to_owned(),
                        value: r.value().to_owned(),
                    })
                    .collect(),
            })
            .collect(),
        placement_constraints: d
            .placement_constraints()
            .iter()
            .map(|p| model::PlacementConstraint {
                kind: model::PlacementConstraintType::from(p.r#type().map_or("", |t| t.as_str())),
                expression: owned(p.expression()),
            })
            .collect(),
        requires_compatibilities: d
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        cpu: owned(d.cpu()),
        memory: owned(d.memory()),
        status: d.status().map(|s| s.as_str().to_owned()),
    }
}

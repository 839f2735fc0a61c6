//! What `once` and `run` share: the AWS configuration and its checks, the ECS side (with CloudWatch utilisation
//! while the policy in force balances on actual use), and the first log line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use ecs_rebalancer::ecs::sdk::{CallHook, SdkEcs};
use ecs_rebalancer::ledger::dynamo::DynamoLedger;
use ecs_rebalancer::ledger::lease::{holder_id, LeaseConfig};
use ecs_rebalancer::ledger::Ledger as _;
use ecs_rebalancer::metrics::Metrics;
use ecs_rebalancer::model::{Snapshot, Utilization};
use ecs_rebalancer::policy::{Metric, Policy};
use ecs_rebalancer::run::Settings;
use ecs_rebalancer::utilization::cloudwatch::CloudWatch;
use ecs_rebalancer::utilization::{SourceError, UtilizationSource, Window, WithUtilization};

use ecs_rebalancer::source::credential::Credential;
use ecs_rebalancer::source::{GitLocation, Location, PolicySource};

use super::{BadInput, ControllerArgs};

/// The ECS side of `once` and `run`: ECS through the SDK, each observation with the utilisation the policy in force
/// needs.
pub type Ecs = WithUtilization<SdkEcs, PolicyUtilization>;

/// Utilisation from CloudWatch Container Insights while, and only while, the policy in force balances on actual use
/// (`cpu-available`, `mem-available`), over that policy's window. It follows policy reloads: a switch from `count`
/// to `cpu-available` reads CloudWatch from the next cycle on, and a switch back stops reading it. The client is made
/// when first needed, and again when the window changes.
pub struct PolicyUtilization {
    conf: aws_config::SdkConfig,
    policy: watch::Receiver<Option<Policy>>,
    client: Mutex<Option<(Window, Arc<CloudWatch>)>>,
}

impl PolicyUtilization {
    pub fn new(conf: &aws_config::SdkConfig, policy: watch::Receiver<Option<Policy>>) -> PolicyUtilization {
        PolicyUtilization {
            conf: conf.clone(),
            policy,
            client: Mutex::new(None),
        }
    }

    /// CloudWatch for the policy in force, `None` when its metric needs no utilisation (or there is none).
    fn cloudwatch(&self) -> Option<Arc<CloudWatch>> {
        let (metric, window) = {
            let policy = self.policy.borrow();
            let policy = policy.as_ref()?;
            (policy.metric, Window::of(policy))
        };
        if !matches!(metric, Metric::CpuAvailable | Metric::MemAvailable) {
            return None;
        }
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        match &*client {
            Some((made_for, cloudwatch)) if *made_for == window => Some(Arc::clone(cloudwatch)),
            _ => {
                let cloudwatch = Arc::new(CloudWatch::from_conf(&self.conf, None, window));
                *client = Some((window, Arc::clone(&cloudwatch)));
                Some(cloudwatch)
            }
        }
    }
}

impl UtilizationSource for PolicyUtilization {
    async fn fetch(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Utilization>, SourceError> {
        match self.cloudwatch() {
            Some(cloudwatch) => cloudwatch.fetch(snapshot, now).await,
            None => Ok(BTreeMap::new()),
        }
    }
}

/// The ECS side of `once` and `run`, once the ledger table and the cluster are known to exist: a wrong `--table` or
/// `--cluster` is refused with one line naming it, before the lease is touched, so nothing is left behind (no lease
/// item for a cluster that does not exist). `policy` is the policy in force, followed as it is reloaded.
pub async fn ecs_client(
    conf: &aws_config::SdkConfig,
    args: &ControllerArgs,
    policy: watch::Receiver<Option<Policy>>,
    metrics: &Arc<Metrics>,
    ledger: &DynamoLedger,
) -> anyhow::Result<Ecs> {
    let counter = Arc::clone(metrics);
    let hook: CallHook = Arc::new(move |operation, throttled| counter.count_call(operation, throttled));
    let ecs = SdkEcs::from_conf_counted(conf, args.endpoint_url.as_deref(), &args.cluster, Some(hook))
        .read_share(args.aws.pacing());
    ledger.read_lease(&args.cluster).await?;
    ecs.check_cluster().await?;
    Ok(WithUtilization::new(ecs, PolicyUtilization::new(conf, policy)))
}

/// The policy source `--policy` names. A plain path is read at once, and any problem with it is bad input; a git
/// source is only parsed here (its credential needs the AWS configuration, see [`open_git`]).
pub enum Opened {
    Ready(Box<PolicySource>),
    Git(GitLocation),
}

pub fn open_source(args: &ControllerArgs) -> Result<Opened, BadInput> {
    match args.policy.parse::<Location>().map_err(|e| BadInput(e.to_string()))? {
        Location::Path(path) => PolicySource::path(&path, &args.cluster)
            .map(|s| Opened::Ready(Box::new(s)))
            .map_err(|e| BadInput(e.to_string())),
        Location::Git(git) => Ok(Opened::Git(git)),
    }
}

/// The source, its git part made with the credential `--policy-token-secret` or ECS_REBALANCER_POLICY_TOKEN gives.
pub fn finish_source(
    opened: Opened,
    conf: &aws_config::SdkConfig,
    args: &ControllerArgs,
) -> anyhow::Result<PolicySource> {
    match opened {
        Opened::Ready(source) => Ok(*source),
        Opened::Git(git) => {
            let credential = Credential::from_settings(conf, args.policy_token_secret.as_deref());
            Ok(PolicySource::git(git, &args.cluster, credential, args.policy_poll)?)
        }
    }
}

/// Loads and checks the AWS configuration, checks the account when one is expected, and names this replica.
pub async fn connect(args: &ControllerArgs) -> anyhow::Result<(aws_config::SdkConfig, Settings)> {
    if let Some(url) = &args.endpoint_url {
        ecs_rebalancer::aws::check_endpoint("--endpoint-url", url)?;
    }
    let conf = ecs_rebalancer::aws::load().await?;
    ecs_rebalancer::aws::guard(&conf, args.aws.expect_account.as_deref()).await?;
    let settings = Settings {
        cluster: args.cluster.clone(),
        holder: holder_id(),
        lease: LeaseConfig::new(args.lease_duration),
        #[cfg(feature = "crash-points")]
        crash_at: args.crash_at,
        #[cfg(feature = "chaos")]
        chaos: ecs_rebalancer::run::chaos::Chaos {
            time_scale: args.time_scale,
            unfenced: args.unfenced,
        },
    };
    Ok((conf, settings))
}

/// The first log line of a controller whose configuration, table and cluster checked out.
pub fn started(settings: &Settings, args: &ControllerArgs) {
    tracing::info!(cluster = %settings.cluster, holder = %settings.holder, table = %args.table, "starting");
}

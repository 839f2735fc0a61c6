//! The command line: every command's flags (clap), the input helpers the commands share, and one file per command
//! (`validate.rs`, `plan.rs`, …) that turns parsed flags into a library call and its output. `main.rs` dispatches.

pub mod controller;
pub mod demo;
pub mod init;
pub mod inspect;
pub mod once;
pub mod output;
pub mod placement;
pub mod plan;
pub mod run;
pub mod simulate;
pub mod snapshot;
pub mod status;
pub mod twin;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use ecs_rebalancer::model::{Cluster, Snapshot};
use ecs_rebalancer::policy;

use output::Output;

/// Exit code for bad input: an invalid policy or snapshot. Nothing was acted on.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "ecs-rebalancer",
    version,
    about = "Keeps AWS ECS clusters (EC2 launch type) balanced"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// The argument structs below carry no doc comments: a subcommand's `about` is its variant's doc comment, and clap
// would let a doc comment on the struct replace it.
#[derive(Subcommand)]
pub enum Command {
    /// Check policy files or folders; print every error as file:line:col: message; exit 2 if any.
    Validate(ValidateArgs),
    /// Plan one cycle on a snapshot: the moves that bring it within policy, with predicted before and after load.
    Plan(PlanArgs),
    /// Run the controller against the twin of a snapshot until it converges, gets stuck, or reaches --max-cycles.
    Simulate(SimulateArgs),
    /// Capture a live cluster to a snapshot file, through the AWS SDK (credentials and region from the default
    /// chain; endpoints from --endpoint-url or AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_ECS).
    Snapshot(SnapshotArgs),
    /// Watch the controller rebalance a built-in cluster after a scale-out (no AWS, no network).
    Demo,
    /// Create the ledger table in DynamoDB (on-demand, TTL on expiresAt).
    Init(InitArgs),
    /// One controller cycle under the cluster's lease, for cron or EventBridge Scheduler. Exit 0: the cycle ran;
    /// 3: another replica holds the lease; 4: the cycle refused to act (incomplete observation, lease lost); 1: an
    /// AWS or ledger error; 2: bad input.
    Once(ControllerArgs),
    /// The controller, continuously: a cycle every policy interval while this replica holds the lease; policy edits
    /// picked up; SIGTERM finishes the step in progress and releases the lease.
    Run(RunArgs),
    /// What the ledger says about a cluster: the leader, actions in flight and recent, cooldowns.
    Status(StatusArgs),
    /// The twin as a local ECS.
    Twin {
        #[command(subcommand)]
        command: TwinCommand,
    },
    /// Show where ECS could and would place a new task of a service, and why every other instance is ruled out.
    Placement(PlacementArgs),
    /// Load a snapshot file and show each instance's tasks, reservations and use, and any inconsistencies.
    Inspect(InspectArgs),
}

impl Command {
    /// `once` and `run`: the controller, whose logs are for machines.
    pub fn is_controller(&self) -> bool {
        matches!(self, Command::Run(_) | Command::Once(_))
    }
}

#[derive(Subcommand)]
pub enum TwinCommand {
    /// Serve the twin of a snapshot behind ECS's JSON 1.1 protocol (point an AWS SDK or the AWS CLI at it).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Policy files, or folders searched recursively for *.yaml and *.yml.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    #[arg(long)]
    pub snapshot: PathBuf,
    /// A policy file, or a folder of them; the one whose `clusters` matches the snapshot's cluster is used.
    #[arg(long)]
    pub policy: PathBuf,
    /// Plan as if a rebalancing episode were under way (keep going down to `target`, not just above `trigger`).
    #[arg(long)]
    pub continuing: bool,
    /// Use the policy even though its `clusters` do not match the snapshot's cluster, to rehearse it on another
    /// cluster's snapshot. `--policy` must then hold exactly one policy.
    #[arg(long)]
    pub any_cluster: bool,
    /// The planner's "now" (RFC 3339), for cooldowns and grace periods; default: the snapshot's capturedAt, else
    /// the current time.
    #[arg(long)]
    pub now: Option<String>,
    /// Skip the reachable-balance reference (a search that can take seconds on thousands of instances).
    #[arg(long)]
    pub no_reachable: bool,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    #[arg(long)]
    pub snapshot: PathBuf,
    #[arg(long)]
    pub policy: PathBuf,
    /// Use the one policy in --policy even if its `clusters` do not match the snapshot's cluster.
    #[arg(long)]
    pub any_cluster: bool,
    #[arg(long, default_value_t = 200)]
    pub max_cycles: u32,
    /// Seeds the twin's tie-breaks among equally good instances.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the end state here, in the snapshot format.
    #[arg(long)]
    pub final_snapshot: Option<PathBuf>,
    /// Also play the scenario with the two behaviours used in the field, and compare.
    #[arg(long)]
    pub compare_baselines: bool,
    /// Skip the reachable-balance reference (a search that can take seconds on thousands of instances).
    #[arg(long)]
    pub no_reachable: bool,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct SnapshotArgs {
    #[arg(long, env = "ECS_CLUSTER")]
    pub cluster: String,
    /// Write here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Send ECS requests here (as the AWS CLI's --endpoint-url), e.g. a local `twin serve`.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Also read each instance's actual CPU and memory use from CloudWatch Container Insights.
    #[arg(long)]
    pub utilization: bool,
    /// With --utilization: average datapoints over this window, ending at the newest datapoint.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// With --utilization: an instance whose newest datapoint is older than this is unknown.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub stale_after: Duration,
}

#[derive(clap::Args)]
pub struct InitArgs {
    #[arg(long, env = "ECS_REBALANCER_TABLE")]
    pub table: String,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: std::net::SocketAddr,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long, env = "ECS_CLUSTER")]
    pub cluster: String,
    #[arg(long, env = "ECS_REBALANCER_TABLE")]
    pub table: String,
    /// How far back "recent" goes.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub since: Duration,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct PlacementArgs {
    #[arg(long)]
    pub snapshot: PathBuf,
    /// The service; all services when omitted.
    #[arg(long)]
    pub service: Option<String>,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    #[arg(long)]
    pub snapshot: PathBuf,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub snapshot: PathBuf,
    /// Address to listen on; loopback only is sensible.
    #[arg(long, default_value = "127.0.0.1:4566")]
    pub listen: std::net::SocketAddr,
    /// Simulated time per wall-clock second: a number of seconds (60 plays an hour a minute) or a duration
    /// (`1m`); 0 stops the clock. Default: real time.
    #[arg(long, visible_alias = "speed", default_value = "1", value_parser = tick)]
    pub tick: f64,
    /// Write the twin's state here as a snapshot: on SIGUSR1 (and go on), and on SIGTERM or Ctrl-C (then exit).
    #[arg(long)]
    pub state_out: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Throttle with ECS's documented token buckets (ThrottlingException when empty).
    #[arg(long)]
    pub throttle: bool,
    /// Share (0..1) of mutations applied but answered with a 500, as if the response were lost.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub drop_mutation_responses: f64,
    /// Share (0..1) of calls answered with a 500 ServerException, nothing applied.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub error_rate: f64,
    /// Share (0..1) of describe calls that report an item in failures[] (an incomplete observation).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub describe_failures: f64,
    /// Latency added to every answer, e.g. 50ms.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
}

// The options of `once` and `run`.
#[derive(clap::Args)]
pub struct ControllerArgs {
    /// A policy file or folder, or a git source `git+https://host/org/repo.git?ref=main&path=policies/` (also
    /// `git+http://`, `git+file://`); the policy whose `clusters` matches --cluster is used. Parsed by the command,
    /// not here, so that an error never repeats a password the value held.
    #[arg(long, env = "ECS_REBALANCER_POLICY")]
    pub policy: String,
    /// How often a git source is fetched.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub policy_poll: Duration,
    /// The AWS Secrets Manager secret (name or ARN) whose SecretString is the HTTPS token of a git source; without
    /// it the token is read from ECS_REBALANCER_POLICY_TOKEN when that is set.
    #[arg(long, env = "ECS_REBALANCER_POLICY_TOKEN_SECRET")]
    pub policy_token_secret: Option<String>,
    #[arg(long, env = "ECS_CLUSTER")]
    pub cluster: String,
    /// The ledger table (see `init`).
    #[arg(long, env = "ECS_REBALANCER_TABLE")]
    pub table: String,
    /// Send ECS requests here (as the AWS CLI's --endpoint-url); other services follow AWS_ENDPOINT_URL_<SERVICE>.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// How long a lease renewal lets this replica act, and how long a follower waits for a silent leader.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// For the crash-recovery tests: abort at this point of the first action (after-claim, after-act). Only in builds
    /// with the `crash-points` feature.
    #[cfg(feature = "crash-points")]
    #[arg(long, hide = true)]
    pub crash_at: Option<ecs_rebalancer::reconcile::CrashPoint>,
}

// The options of every command that talks to AWS.
#[derive(clap::Args)]
pub struct AwsArgs {
    /// Refuse to run unless the credentials belong to this account (checked with STS GetCallerIdentity first).
    #[arg(long, env = "AWS_ACCOUNT_ID")]
    pub expect_account: Option<String>,
    /// Share (0..1) of ECS's read throttle buckets this process may spend; the buckets are shared by every caller in
    /// the account and Region. 0 turns pacing off.
    #[arg(long, default_value_t = ecs_rebalancer::ecs::sdk::DEFAULT_READ_SHARE, value_parser = share)]
    pub read_share: f64,
}

impl AwsArgs {
    /// The read share to pace to; `None` when 0 turns pacing off.
    pub fn pacing(&self) -> Option<f64> {
        (self.read_share > 0.0).then_some(self.read_share)
    }
}

/// Simulated seconds per wall-clock second: `60`, `0.5`, or a duration such as `1m`.
fn tick(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err(format!("{s:?} is negative or not finite")),
        Err(_) => humantime::parse_duration(s)
            .map(|d| d.as_secs_f64())
            .map_err(|e| format!("{s:?} is neither a number of seconds nor a duration: {e}")),
    }
}

/// A share of calls: a number from 0 to 1.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0 and 1")),
    }
}

/// A failure of the user's input: printed as is, exit 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A command that ends with a particular exit code, its reason already reported.
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

/// Loads and indexes a snapshot; any defect is bad input.
pub fn load_cluster(path: &Path) -> anyhow::Result<Cluster> {
    let snapshot = Snapshot::load(path).map_err(|e| BadInput(e.to_string()))?;
    Ok(Cluster::new(snapshot).map_err(|e| BadInput(format!("{}: {e}", path.display())))?)
}

/// The policy governing `cluster` in `path`, or with `any_cluster` the one policy there.
pub fn choose_policy(path: &Path, cluster: &str, any_cluster: bool) -> anyhow::Result<policy::Policy> {
    let mut policies = policy::load_paths(&[path]).map_err(|d| BadInput(d.to_string()))?;
    if any_cluster {
        return match policies.len() {
            1 => Ok(policies.remove(0)),
            n => Err(BadInput(format!(
                "--any-cluster needs exactly one policy; {} holds {n}",
                path.display()
            ))
            .into()),
        };
    }
    let chosen = policy::policy_for_cluster(&policies, cluster)
        .map_err(|e| BadInput(e.to_string()))?
        .ok_or_else(|| {
            BadInput(format!(
                "no policy in {} governs cluster {cluster:?} (rehearsing another cluster's policy? add --any-cluster)",
                path.display()
            ))
        })?;
    Ok(chosen.clone())
}

/// A single-threaded runtime: the twin and the controller need no more.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called, not when the future is
/// first polled: `run` polls it only between steps, and a SIGTERM during its first lease round and cycle must still
/// finish the step and release the lease rather than kill the process. A handler that cannot be installed (no file
/// descriptor left) fails start-up rather than leave the signal's default action. Must be called inside the runtime.
pub fn shutdown() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use anyhow::Context as _;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown requested: finishing the step in progress");
    })
}

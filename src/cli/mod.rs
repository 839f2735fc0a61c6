//! The command line: every command's flags (clap), the input helpers the commands share, and one file per command
//! (`validate.rs`, `plan.rs`, …) that turns parsed flags into a library call and its output. `main.rs` dispatches.

pub mod controller;
pub mod demo;
pub mod health;
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
    /// Exit 0 if `run`'s /healthz on --listen answers 200 within two seconds, else 1: a container health check for
    /// an image without a shell.
    Health(HealthArgs),
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
    /// Run all --max-cycles cycles, also after convergence or a fixed point: a rehearsal of hours of the controller
    /// (with a 5-minute interval, 100 cycles are 8 h 20 min simulated).
    #[arg(long)]
    pub keep_running: bool,
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::Args)]
pub struct SnapshotArgs {
    #[arg(long, env = "ECS_CLUSTER", value_parser = non_empty)]
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
    #[arg(long, default_value = "5m", value_parser = datapoint_age)]
    pub window: Duration,
    /// With --utilization: an instance whose newest datapoint is older than this is unknown.
    #[arg(long, default_value = "10m", value_parser = datapoint_age)]
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
pub struct HealthArgs {
    /// Where `run` serves /healthz (its --listen; 0.0.0.0 is asked at 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: std::net::SocketAddr,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long, env = "ECS_CLUSTER", value_parser = non_empty)]
    pub cluster: String,
    #[arg(long, env = "ECS_REBALANCER_TABLE")]
    pub table: String,
    /// How far back "recent" goes.
    #[arg(long, default_value = "24h", value_parser = since)]
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
    #[arg(long, default_value = "0s", value_parser = latency)]
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
    #[arg(long, default_value = "1m", value_parser = policy_poll)]
    pub policy_poll: Duration,
    /// The AWS Secrets Manager secret (name or ARN) whose SecretString is the HTTPS token of a git source; without
    /// it the token is read from ECS_REBALANCER_POLICY_TOKEN when that is set.
    #[arg(long, env = "ECS_REBALANCER_POLICY_TOKEN_SECRET")]
    pub policy_token_secret: Option<String>,
    #[arg(long, env = "ECS_CLUSTER", value_parser = non_empty)]
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
    #[arg(long, default_value = "30s", value_parser = lease_duration)]
    pub lease_duration: Duration,
    /// For the crash-recovery tests: abort at this point of the first action (after-claim, after-act). Only in builds
    /// with the `crash-points` feature.
    #[cfg(feature = "crash-points")]
    #[arg(long, hide = true)]
    pub crash_at: Option<ecs_rebalancer::reconcile::CrashPoint>,
    /// For the chaos soak: divide every wait of the run loop by this. Only in builds with the `chaos` feature.
    #[cfg(feature = "chaos")]
    #[arg(long, hide = true, default_value = "1", value_parser = ecs_rebalancer::run::chaos::time_scale)]
    pub time_scale: f64,
    /// For the chaos soak's broken build: act without the lease (fencing off). Only with the `chaos` feature.
    #[cfg(feature = "chaos")]
    #[arg(long, hide = true)]
    pub unfenced: bool,
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
    let seconds = match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => v,
        Ok(_) => return Err(format!("{s:?} is negative or not finite")),
        Err(_) => humantime::parse_duration(s)
            .map(|d| d.as_secs_f64())
            .map_err(|e| format!("{s:?} is neither a number of seconds nor a duration: {e}"))?,
    };
    if seconds > MAX_TICK {
        return Err(format!("{s:?} is faster than a simulated day per second"));
    }
    Ok(seconds)
}

/// The fastest `twin serve` clock: a simulated day per wall-clock second (a pass must stay a pass, and a faster
/// clock would overflow a duration).
const MAX_TICK: f64 = 86_400.0;

/// A duration from `min` to `max`, both included: a bound outside them is a typo, a hot loop or an overflow.
fn within(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration: {e}"))?;
    if d < min || d > max {
        return Err(format!(
            "{s:?} is outside {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// `--lease-duration`: renewed every third of it, so under a second would hammer the table; over an hour, a dead
/// leader would hold the cluster that long.
fn lease_duration(s: &str) -> Result<Duration, String> {
    within(s, SECOND, HOUR)
}

/// `--policy-poll`: a git fetch each time.
fn policy_poll(s: &str) -> Result<Duration, String> {
    within(s, SECOND, DAY)
}

/// `--window` and `--stale-after`: Container Insights publishes a datapoint a minute.
fn datapoint_age(s: &str) -> Result<Duration, String> {
    within(s, MINUTE, DAY)
}

/// `status --since`: finished actions are kept 30 days; a year covers every record.
fn since(s: &str) -> Result<Duration, String> {
    within(s, Duration::ZERO, 366 * DAY)
}

/// `twin serve --latency`.
fn latency(s: &str) -> Result<Duration, String> {
    within(s, Duration::ZERO, MINUTE)
}

/// A share of calls: a number from 0 to 1.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("ecs-rebalancer").chain(args.iter().copied())).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_at_and_past_their_bounds_are_taken_or_refused_with_the_flag_named() {
        let run = |flag: &str, value: &str| {
            parse(&[
                "run",
                "--policy",
                "p.yaml",
                "--cluster",
                "c",
                "--table",
                "t",
                flag,
                value,
            ])
        };
        let twin = |flag: &str, value: &str| parse(&["twin", "serve", "--snapshot", "s.json", flag, value]);
        let status = |value: &str| parse(&["status", "--cluster", "c", "--table", "t", "--since", value]);
        for (what, parsed) in [
            ("lease 1s", run("--lease-duration", "1s")),
            ("lease 1h", run("--lease-duration", "1h")),
            ("poll 1s", run("--policy-poll", "1s")),
            ("tick 0", twin("--tick", "0")),
            ("tick a day", twin("--tick", "86400")),
            ("tick 1d", twin("--tick", "1d")),
            ("latency 0s", twin("--latency", "0s")),
            ("since 0s", status("0s")),
            ("since 366d", status("366days")),
        ] {
            assert!(parsed.is_ok(), "{what}: {:?}", parsed.err());
        }
        for (flag, parsed) in [
            ("--lease-duration", run("--lease-duration", "0s")),
            ("--lease-duration", run("--lease-duration", "999999999years")),
            ("--policy-poll", run("--policy-poll", "0s")),
            ("--tick", twin("--tick", "1e30")),
            ("--tick", twin("--tick", "NaN")),
            ("--tick", parse(&["twin", "serve", "--snapshot", "s.json", "--tick=-1"])),
            ("--tick", twin("--tick", "2d")),
            ("--latency", twin("--latency", "2h")),
            ("--since", status("1000000years")),
            ("--drop-mutation-responses", twin("--drop-mutation-responses", "1.5")),
        ] {
            let e = parsed.err().unwrap_or_else(|| panic!("{flag} taken"));
            assert!(e.contains(flag), "{e}");
        }
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

#[cfg(test)]
mod deploy_tests {
    //! The CloudFormation stack (`deploy/cloudformation/ecs-rebalancer.yaml`) runs the controller with command lines
    //! written in the template: each is parsed here with this CLI's own definition, so the stack cannot drift from
    //! the flags.

    use clap::Parser as _;
    use serde_json::Value;

    use super::{Cli, Command};
    use ecs_rebalancer::policy::spanned;

    /// The template as JSON values (read with the policy loader's YAML reader; the template writes intrinsic
    /// functions in their long form, `Ref:` and `Fn::…:`, so it is plain YAML).
    fn template() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cloudformation/ecs-rebalancer.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let docs = spanned::parse(&text).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        docs[0].to_json()
    }

    /// A value as the stack could make it, one per branch of each `Fn::If`; `None` for `AWS::NoValue`. Parameters
    /// and `Fn::Sub` become a sample value of the right shape.
    fn values(v: &Value) -> Vec<Option<String>> {
        match v {
            Value::String(s) => vec![Some(s.clone())],
            Value::Object(o) => match o.iter().next() {
                Some((k, r)) if k == "Ref" && r == "AWS::NoValue" => vec![None],
                Some((k, r)) if k == "Ref" => vec![Some(sample(r.as_str().unwrap_or_default()))],
                Some((k, Value::String(s))) if k == "Fn::Sub" => vec![Some(substitute(s))],
                Some((k, Value::Array(a))) if k == "Fn::Sub" => vec![Some(substitute(a[0].as_str().unwrap()))],
                Some((k, Value::Array(a))) if k == "Fn::If" => a[1..].iter().flat_map(values).collect(),
                other => panic!("an intrinsic function this test does not know in a command line: {other:?}"),
            },
            other => panic!("a command line element {other}"),
        }
    }

    fn substitute(s: &str) -> String {
        let re = regex::Regex::new(r"\$\{([^}]+)\}").unwrap();
        re.replace_all(s, |c: &regex::Captures| sample(&c[1])).into_owned()
    }

    /// A sample value for a parameter or pseudo-parameter, shaped as the flag it feeds expects.
    fn sample(name: &str) -> String {
        match name {
            "PolicySource" => "git+https://github.com/acme/ecs-policies.git?ref=main&path=policies".into(),
            "ExpectedAccount" | "AWS::AccountId" => "111122223333".into(),
            "AWS::Region" => "eu-west-1".into(),
            n if n.contains("Secret") => "arn:aws:secretsmanager:eu-west-1:111122223333:secret:token-AbCdEf".into(),
            n => format!("sample-{n}"),
        }
    }

    /// Every command line of a container (each branch of each `Fn::If`).
    fn command_lines(v: &Value) -> Vec<Vec<String>> {
        match v {
            Value::Array(items) => {
                let mut lines = vec![Vec::new()];
                for item in items {
                    let choices = values(item);
                    lines = lines
                        .iter()
                        .flat_map(|line| {
                            choices.iter().map(move |c| {
                                let mut l: Vec<String> = line.clone();
                                l.extend(c.clone());
                                l
                            })
                        })
                        .collect();
                }
                lines
            }
            Value::Object(o) if o.contains_key("Fn::If") => o["Fn::If"].as_array().unwrap()[1..]
                .iter()
                .flat_map(command_lines)
                .collect(),
            other => panic!("a Command that is not a list: {other}"),
        }
    }

    /// Every container command line in the template's task definitions.
    fn every_command_line() -> Vec<Vec<String>> {
        let t = template();
        let mut lines = Vec::new();
        for resource in t["Resources"].as_object().unwrap().values() {
            if resource["Type"] != "AWS::ECS::TaskDefinition" {
                continue;
            }
            for container in resource["Properties"]["ContainerDefinitions"].as_array().unwrap() {
                if let Some(command) = container.get("Command") {
                    lines.extend(command_lines(command));
                }
            }
        }
        lines
    }

    #[test]
    fn every_command_line_of_the_stack_parses_with_the_cli_in_both_modes() {
        let lines = every_command_line();
        let mut modes = std::collections::BTreeSet::new();
        for line in &lines {
            let argv = std::iter::once("ecs-rebalancer".to_owned()).chain(line.iter().cloned());
            let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{line:?}:\n{e}"));
            match cli.command {
                Command::Run(args) => {
                    assert_eq!(args.listen.to_string(), "0.0.0.0:9100", "{line:?}");
                    modes.insert("run");
                }
                Command::Once(_) => {
                    modes.insert("once");
                }
                _ => panic!("the stack runs neither `run` nor `once`: {line:?}"),
            }
        }
        assert_eq!(modes.into_iter().collect::<Vec<_>>(), ["once", "run"], "{lines:?}");
    }

    /// The container health check runs the image's own binary (no shell, no curl) against the port `run` serves.
    #[test]
    fn the_health_check_asks_run_on_the_port_it_listens_on() {
        let t = template();
        let run = &t["Resources"]["RunTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
        let check: Vec<&str> = run["HealthCheck"]["Command"]
            .as_array()
            .expect("a health check")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            check[..2],
            ["CMD", "/usr/local/bin/ecs-rebalancer"],
            "exec form, the image's binary"
        );
        let cli = Cli::try_parse_from(std::iter::once("ecs-rebalancer").chain(check[2..].iter().copied()))
            .unwrap_or_else(|e| panic!("{check:?}:\n{e}"));
        let Command::Health(health) = cli.command else {
            panic!("{check:?} is not `health`")
        };
        for line in command_lines(&run["Command"]) {
            let argv = std::iter::once("ecs-rebalancer".to_owned()).chain(line.iter().cloned());
            let Ok(Cli {
                command: Command::Run(args),
                ..
            }) = Cli::try_parse_from(argv)
            else {
                panic!("{line:?}")
            };
            assert_eq!(args.listen.port(), health.listen.port(), "{line:?}");
        }
    }

    #[test]
    fn a_command_line_with_a_flag_the_cli_does_not_have_is_refused() {
        // What the test above relies on: a drifted flag is an error, not ignored.
        let argv = [
            "ecs-rebalancer",
            "run",
            "--policy",
            "/p",
            "--cluster",
            "c",
            "--table",
            "t",
            "--policy-pol",
            "1m",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}

/// A name that must say something (a cluster): an empty `--cluster` or `ECS_CLUSTER` is refused where it is read.
fn non_empty(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("must not be empty".into()),
        t => Ok(t.to_owned()),
    }
}

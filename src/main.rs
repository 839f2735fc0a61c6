//! The `ecs-rebalancer` command line: argument parsing and wiring only. Everything it does lives in the library.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use ecs_rebalancer::model::{Cluster, Service, Snapshot};
use ecs_rebalancer::placement::{PlacementIndex, ServicePlacement};
use ecs_rebalancer::report::ClusterReport;
use ecs_rebalancer::twin::TwinConfig;
use ecs_rebalancer::{plan, policy, scenarios, simulate};

/// Exit code for bad input: an invalid policy or snapshot. Nothing was acted on.
const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "ecs-rebalancer",
    version,
    about = "Keeps AWS ECS clusters (EC2 launch type) balanced"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check policy files or folders; print every error as file:line:col: message; exit 2 if any.
    Validate {
        /// Policy files, or folders searched recursively for *.yaml and *.yml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Plan one cycle on a snapshot: the moves that bring it within policy, with predicted before and after load.
    Plan {
        #[arg(long)]
        snapshot: PathBuf,
        /// A policy file, or a folder of them; the one whose `clusters` matches the snapshot's cluster is used.
        #[arg(long)]
        policy: PathBuf,
        /// Plan as if a rebalancing episode were under way (keep going down to `target`, not just above `trigger`).
        #[arg(long)]
        continuing: bool,
        /// Use the policy even though its `clusters` do not match the snapshot's cluster, to rehearse it on another
        /// cluster's snapshot. `--policy` must then hold exactly one policy.
        #[arg(long)]
        any_cluster: bool,
        /// The planner's "now" (RFC 3339), for cooldowns and grace periods; default: the snapshot's capturedAt, else
        /// the current time.
        #[arg(long)]
        now: Option<String>,
        /// Skip the reachable-balance reference (a search that can take seconds on thousands of instances).
        #[arg(long)]
        no_reachable: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Run the controller against the twin of a snapshot until it converges, gets stuck, or reaches --max-cycles.
    Simulate {
        #[arg(long)]
        snapshot: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        /// Use the one policy in --policy even if its `clusters` do not match the snapshot's cluster.
        #[arg(long)]
        any_cluster: bool,
        #[arg(long, default_value_t = 200)]
        max_cycles: u32,
        /// Seeds the twin's tie-breaks among equally good instances.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the end state here, in the snapshot format.
        #[arg(long)]
        final_snapshot: Option<PathBuf>,
        /// Also play the scenario with the two behaviours used in the field, and compare.
        #[arg(long)]
        compare_baselines: bool,
        /// Skip the reachable-balance reference (a search that can take seconds on thousands of instances).
        #[arg(long)]
        no_reachable: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Capture a live cluster to a snapshot file, through the AWS SDK (credentials and region from the default
    /// chain; endpoints from --endpoint-url or AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_ECS).
    Snapshot {
        #[arg(long, env = "ECS_CLUSTER")]
        cluster: String,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Send ECS requests here (as the AWS CLI's --endpoint-url), e.g. a local `twin serve`.
        #[arg(long)]
        endpoint_url: Option<String>,
        #[command(flatten)]
        aws: AwsArgs,
        /// Also read each instance's actual CPU and memory use from CloudWatch Container Insights.
        #[arg(long)]
        utilization: bool,
        /// With --utilization: average datapoints over this window, ending at the newest datapoint.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
        /// With --utilization: an instance whose newest datapoint is older than this is unknown.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        stale_after: std::time::Duration,
    },
    /// Watch the controller rebalance a built-in cluster after a scale-out (no AWS, no network).
    Demo,
    /// Create the ledger table in DynamoDB (on-demand, TTL on expiresAt).
    Init {
        #[arg(long, env = "ECS_REBALANCER_TABLE")]
        table: String,
    },
    /// One controller cycle under the cluster's lease, for cron or EventBridge Scheduler. Exit 0: the cycle ran;
    /// 3: another replica holds the lease; 4: the cycle refused to act (incomplete observation, lease lost); 1: an
    /// AWS or ledger error; 2: bad input.
    Once {
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// The controller, continuously: a cycle every policy interval while this replica holds the lease; policy edits
    /// picked up; SIGTERM finishes the step in progress and releases the lease.
    Run {
        #[command(flatten)]
        controller: ControllerArgs,
        /// Serve /metrics, /healthz and /readyz here.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: std::net::SocketAddr,
    },
    /// What the ledger says about a cluster: the leader, actions in flight and recent, cooldowns.
    Status {
        #[arg(long, env = "ECS_CLUSTER")]
        cluster: String,
        #[arg(long, env = "ECS_REBALANCER_TABLE")]
        table: String,
        /// How far back "recent" goes.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The twin as a local ECS.
    Twin {
        #[command(subcommand)]
        command: TwinCommand,
    },
    /// Show where ECS could and would place a new task of a service, and why every other instance is ruled out.
    Placement {
        #[arg(long)]
        snapshot: PathBuf,
        /// The service; all services when omitted.
        #[arg(long)]
        service: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Load a snapshot file and show each instance's tasks, reservations and use, and any inconsistencies.
    Inspect {
        #[arg(long)]
        snapshot: PathBuf,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Subcommand)]
enum TwinCommand {
    /// Serve the twin of a snapshot behind ECS's JSON 1.1 protocol (point an AWS SDK or the AWS CLI at it).
    Serve {
        #[arg(long)]
        snapshot: PathBuf,
        /// Address to listen on; loopback only is sensible.
        #[arg(long, default_value = "127.0.0.1:4566")]
        listen: std::net::SocketAddr,
        /// Simulated time per wall-clock second: a number of seconds (60 plays an hour a minute) or a duration
        /// (`1m`); 0 stops the clock. Default: real time.
        #[arg(long, visible_alias = "speed", default_value = "1", value_parser = tick)]
        tick: f64,
        /// Write the twin's state here as a snapshot: on SIGUSR1 (and go on), and on SIGTERM or Ctrl-C (then exit).
        #[arg(long)]
        state_out: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Throttle with ECS's documented token buckets (ThrottlingException when empty).
        #[arg(long)]
        throttle: bool,
        /// Share (0..1) of mutations applied but answered with a 500, as if the response were lost.
        #[arg(long, default_value_t = 0.0, value_parser = share)]
        drop_mutation_responses: f64,
        /// Share (0..1) of calls answered with a 500 ServerException, nothing applied.
        #[arg(long, default_value_t = 0.0, value_parser = share)]
        error_rate: f64,
        /// Share (0..1) of describe calls that report an item in failures[] (an incomplete observation).
        #[arg(long, default_value_t = 0.0, value_parser = share)]
        describe_failures: f64,
        /// Latency added to every answer, e.g. 50ms.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        latency: std::time::Duration,
    },
}

/// Options of `once` and `run`.
#[derive(clap::Args)]
struct ControllerArgs {
    /// A policy file, or a folder of them; the one whose `clusters` matches --cluster is used.
    #[arg(long)]
    policy: PathBuf,
    #[arg(long, env = "ECS_CLUSTER")]
    cluster: String,
    /// The ledger table (see `init`).
    #[arg(long, env = "ECS_REBALANCER_TABLE")]
    table: String,
    /// Send ECS requests here (as the AWS CLI's --endpoint-url); other services follow AWS_ENDPOINT_URL_<SERVICE>.
    #[arg(long)]
    endpoint_url: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
    /// How long a lease renewal lets this replica act, and how long a follower waits for a silent leader.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease_duration: std::time::Duration,
    /// For the crash-recovery tests: abort at this point of the first action (after-claim, after-act).
    #[arg(long, hide = true)]
    crash_at: Option<ecs_rebalancer::reconcile::CrashPoint>,
}

/// Options of every command that talks to AWS.
#[derive(clap::Args)]
struct AwsArgs {
    /// Refuse to run unless the credentials belong to this account (checked with STS GetCallerIdentity first).
    #[arg(long, env = "AWS_ACCOUNT_ID")]
    expect_account: Option<String>,
    /// Share (0..1) of ECS's read throttle buckets this process may spend; the buckets are shared by every caller in
    /// the account and Region. 0 turns pacing off.
    #[arg(long, default_value_t = ecs_rebalancer::ecs::sdk::DEFAULT_READ_SHARE, value_parser = share)]
    read_share: f64,
}

impl AwsArgs {
    /// The read share to pace to; `None` when 0 turns pacing off.
    fn pacing(&self) -> Option<f64> {
        (self.read_share > 0.0).then_some(self.read_share)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// A failure of the user's input: printed as is, exit 2.
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A command that ends with a particular exit code, its reason already reported.
#[derive(Debug)]
struct Exit(u8, String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let controller = matches!(cli.command, Command::Run { .. } | Command::Once { .. });
    let json = logging(controller);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, message) = if let Some(BadInput(message)) = e.downcast_ref::<BadInput>() {
                (EXIT_BAD_INPUT, message.clone())
            } else if let Some(Exit(code, message)) = e.downcast_ref::<Exit>() {
                (*code, message.clone())
            } else if json {
                (1, format!("{e:#}"))
            } else {
                (1, format!("error: {e:#}"))
            };
            if json {
                // When logs are JSON, every line on stderr is JSON: the last word too.
                match code {
                    3 | 4 => tracing::warn!(exit = code, "{message}"),
                    _ => tracing::error!(exit = code, "{message}"),
                }
            } else {
                eprintln!("{message}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { paths } => {
            policy::load_paths(&paths).map_err(|d| BadInput(d.to_string()))?;
            Ok(())
        }
        Command::Plan {
            snapshot,
            policy: policy_path,
            continuing,
            any_cluster,
            now,
            no_reachable,
            output,
        } => {
            let cluster = load_cluster(&snapshot)?;
            let chosen = &choose_policy(&policy_path, cluster.name(), any_cluster)?;
            let now = match now {
                Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
                    .map_err(|e| BadInput(format!("--now {text:?}: {e}")))?
                    .with_timezone(&chrono::Utc),
                None => cluster.snapshot().captured_at.unwrap_or_else(chrono::Utc::now),
            };
            let mut result = plan::plan(
                &cluster,
                chosen,
                &plan::LedgerView::default(),
                now,
                plan::Episode { active: continuing },
            );
            if !no_reachable {
                result.reachable = Some(plan::reachable::reachable(cluster.snapshot(), chosen, now));
            }
            show(output, &result, plan::render::table)
        }
        Command::Simulate {
            snapshot,
            policy: policy_path,
            any_cluster,
            max_cycles,
            seed,
            final_snapshot,
            compare_baselines,
            no_reachable,
            output,
        } => {
            let cluster = load_cluster(&snapshot)?;
            let chosen = choose_policy(&policy_path, cluster.name(), any_cluster)?;
            let options = simulate::Options {
                max_cycles,
                twin: TwinConfig {
                    seed,
                    ..TwinConfig::default()
                },
                reachable: !no_reachable,
            };
            let table = matches!(output, Output::Table);
            let start = cluster.into_snapshot();
            let rt = runtime()?;
            let (report, end) = rt.block_on(simulate::run(start.clone(), &chosen, options, |p| {
                if table {
                    print!("{}", simulate::render_cycle(p, false));
                }
            }));
            if let Some(path) = final_snapshot {
                end.save(&path)?;
            }
            let baselines = if compare_baselines {
                rt.block_on(simulate::baselines(
                    &start,
                    &chosen,
                    options,
                    simulate::BASELINE_DURATION,
                ))
            } else {
                Vec::new()
            };
            let text = match output {
                Output::Table if compare_baselines => {
                    simulate::render_report(&report) + "\n" + &simulate::render_comparison(&report, &baselines)
                }
                Output::Table => simulate::render_report(&report),
                Output::Json => {
                    let mut v = serde_json::to_value(&report)?;
                    if compare_baselines {
                        v["baselines"] = serde_json::to_value(&baselines)?;
                    }
                    serde_json::to_string_pretty(&v)? + "\n"
                }
            };
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            Ok(())
        }
        Command::Snapshot {
            cluster,
            output,
            endpoint_url,
            aws,
            utilization,
            window,
            stale_after,
        } => {
            use ecs_rebalancer::ecs::EcsApi as _;
            use ecs_rebalancer::utilization::{cloudwatch::CloudWatch, Window, WithUtilization};
            if let Some(url) = &endpoint_url {
                ecs_rebalancer::aws::check_endpoint("--endpoint-url", url)?;
            }
            let snapshot = runtime()?.block_on(async {
                let conf = ecs_rebalancer::aws::load().await?;
                ecs_rebalancer::aws::guard(&conf, aws.expect_account.as_deref()).await?;
                let ecs = ecs_rebalancer::ecs::sdk::SdkEcs::from_conf(&conf, endpoint_url.as_deref(), &cluster)
                    .read_share(aws.pacing());
                let ecs = match std::io::stderr().is_terminal() {
                    true => ecs.on_progress(progress_line),
                    false => ecs,
                };
                let snapshot = if utilization {
                    let window = Window { window, stale_after };
                    WithUtilization::new(ecs, CloudWatch::from_conf(&conf, None, window))
                        .observe()
                        .await
                } else {
                    ecs.observe().await
                };
                if std::io::stderr().is_terminal() {
                    eprint!("\r\x1b[2K");
                }
                anyhow::Ok(snapshot?)
            })?;
            match output {
                Some(path) => snapshot.save(&path)?,
                None => println!("{}", serde_json::to_string_pretty(&snapshot)?),
            }
            Ok(())
        }
        Command::Init { table } => runtime()?.block_on(async {
            let conf = ecs_rebalancer::aws::load().await?;
            use ecs_rebalancer::ledger::dynamo::TableSetup;
            match ecs_rebalancer::ledger::dynamo::create_table(&conf, &table).await? {
                TableSetup::Created => println!("created table {table} (on-demand, TTL on expiresAt)"),
                TableSetup::AlreadyThere => {
                    println!("table {table} already exists with the ledger's keys and TTL on expiresAt; left as it is")
                }
            }
            anyhow::Ok(())
        }),
        Command::Once { controller } => {
            let source = ecs_rebalancer::run::PolicySource::open(&controller.policy, &controller.cluster)
                .map_err(|e| BadInput(e.to_string()))?;
            runtime()?.block_on(async {
                let (conf, settings) = connect(&controller).await?;
                let ledger = ecs_rebalancer::ledger::dynamo::DynamoLedger::from_conf(&conf, &controller.table);
                let metrics = std::sync::Arc::new(ecs_rebalancer::metrics::Metrics::default());
                let policy = source.current().clone();
                let ecs = ecs_client(&conf, &controller, &policy, &metrics, &ledger).await?;
                started(&settings, &controller);
                let dry_run = policy.mode == policy::Mode::DryRun;
                use ecs_rebalancer::run::OnceOutcome;
                let outcome = match &ecs {
                    Either::Plain(e) => ecs_rebalancer::run::once(e, &ledger, policy, &settings, &metrics).await,
                    Either::Measured(e) => ecs_rebalancer::run::once(e, &ledger, policy, &settings, &metrics).await,
                }?;
                match outcome {
                    OnceOutcome::Ran(report) => {
                        println!(
                            "{}: {} sent, {} settled, {} in flight",
                            report.plan.summary,
                            report.acted.len(),
                            report.settled.len(),
                            report.in_flight
                        );
                        print!("{}", planned_moves(&report, dry_run));
                        Ok(())
                    }
                    OnceOutcome::NotLeader(holder) => Err(Exit(
                        3,
                        format!(
                            "another replica holds the lease ({}); nothing done",
                            holder.map_or_else(|| "?".into(), |f| format!("{} epoch {}", f.holder, f.epoch))
                        ),
                    )
                    .into()),
                    OnceOutcome::Refused(why) => Err(Exit(4, format!("refused to act: {why}")).into()),
                }
            })
        }
        Command::Run { controller, listen } => {
            let source = ecs_rebalancer::run::PolicySource::open(&controller.policy, &controller.cluster)
                .map_err(|e| BadInput(e.to_string()))?;
            runtime()?.block_on(async {
                let (conf, settings) = connect(&controller).await?;
                let ledger = ecs_rebalancer::ledger::dynamo::DynamoLedger::from_conf(&conf, &controller.table);
                let metrics = std::sync::Arc::new(ecs_rebalancer::metrics::Metrics::default());
                let ecs = ecs_client(&conf, &controller, source.current(), &metrics, &ledger).await?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                started(&settings, &controller);
                tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
                let server = axum::serve(listener, ecs_rebalancer::metrics::router(metrics.clone()));
                tokio::spawn(async move { server.await });
                match &ecs {
                    Either::Plain(e) => {
                        ecs_rebalancer::run::run(e, &ledger, source, &settings, &metrics, shutdown()).await?;
                    }
                    Either::Measured(e) => {
                        ecs_rebalancer::run::run(e, &ledger, source, &settings, &metrics, shutdown()).await?;
                    }
                }
                anyhow::Ok(())
            })
        }
        Command::Status {
            cluster,
            table,
            since,
            output,
        } => {
            use ecs_rebalancer::ledger::Ledger as _;
            let status = runtime()?.block_on(async {
                let conf = ecs_rebalancer::aws::load().await?;
                let ledger = ecs_rebalancer::ledger::dynamo::DynamoLedger::from_conf(&conf, &table);
                let now = chrono::Utc::now();
                let from = now - chrono::Duration::from_std(since).unwrap_or_else(|_| chrono::Duration::days(1));
                let mut actions = ledger.action_log(&cluster).await?;
                actions.records.retain(|a| a.state.in_flight() || a.updated_at > from);
                let lease = ledger.read_lease(&cluster).await?;
                let cooldowns = ledger.cooldowns(&cluster, now).await?;
                anyhow::Ok(ecs_rebalancer::status::Status::new(
                    &cluster, now, lease, actions, cooldowns,
                ))
            })?;
            show(output, &status, ecs_rebalancer::status::Status::to_table)
        }
        Command::Demo => {
            let policy = scenarios::demo_policy();
            println!("ecs-rebalancer demo: a cluster the morning after an instance replacement and a scale-out.");
            println!(
                "Policy: even out task counts per unit of capacity (trigger 0.30, target 0.20); the controller acts \
                 on the twin, a simulated ECS.\n"
            );
            let rt = runtime()?;
            let (report, _) = rt.block_on(simulate::run(
                scenarios::demo_snapshot(),
                &policy,
                simulate::Options::default(),
                |p| print!("{}", simulate::render_cycle(p, true)),
            ));
            print!("\n{}", simulate::render_report(&report));
            let baselines = rt.block_on(simulate::baselines(
                &scenarios::demo_snapshot(),
                &policy,
                simulate::Options::default(),
                simulate::BASELINE_DURATION,
            ));
            println!("\nThe same cluster with the two behaviours used in the field (2 hours simulated):");
            print!("{}", simulate::render_comparison(&report, &baselines));
            Ok(())
        }
        Command::Twin {
            command:
                TwinCommand::Serve {
                    snapshot,
                    listen,
                    tick,
                    state_out,
                    seed,
                    throttle,
                    drop_mutation_responses,
                    error_rate,
                    describe_failures,
                    latency,
                },
        } => {
            let cluster = load_cluster(&snapshot)?;
            let twin = std::sync::Arc::new(ecs_rebalancer::twin::Twin::new(
                cluster.into_snapshot(),
                TwinConfig {
                    seed,
                    ..TwinConfig::default()
                },
            ));
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                println!("listening on {}", listener.local_addr()?);
                use std::io::Write as _;
                std::io::stdout().flush()?;
                let config = ecs_rebalancer::twin::server::ServeConfig {
                    speed: tick,
                    throttle: throttle.then_some(ecs_rebalancer::twin::server::Rates::ECS),
                    faults: ecs_rebalancer::twin::server::Faults {
                        error_rate,
                        latency,
                        drop_mutation_responses,
                        describe_failures,
                        protection_failures: 0.0,
                    },
                    seed,
                };
                let save = |twin: &ecs_rebalancer::twin::Twin| -> anyhow::Result<()> {
                    if let Some(path) = &state_out {
                        twin.snapshot()
                            .save(path)
                            .with_context(|| format!("writing {}", path.display()))?;
                        eprintln!("state written to {}", path.display());
                    }
                    Ok(())
                };
                let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
                let server = ecs_rebalancer::twin::server::serve(twin.clone(), listener, config);
                tokio::pin!(server);
                loop {
                    tokio::select! {
                        result = &mut server => {
                            result?;
                            break;
                        }
                        _ = usr1.recv() => save(&twin)?,
                        () = shutdown() => {
                            save(&twin)?;
                            break;
                        }
                    }
                }
                anyhow::Ok(())
            })
        }
        Command::Placement {
            snapshot,
            service,
            output,
        } => {
            let cluster = load_cluster(&snapshot)?;
            let index = PlacementIndex::new(&cluster);
            let services: Vec<&Service> = match &service {
                Some(name) => vec![cluster.service(name).ok_or_else(|| {
                    let known: Vec<&str> = cluster.services().iter().map(|s| s.service_name.as_str()).collect();
                    BadInput(format!(
                        "{}: no service {name:?}; the snapshot has: {}",
                        snapshot.display(),
                        known.join(", ")
                    ))
                })?],
                None => cluster.services().iter().collect(),
            };
            let answers: Vec<ServicePlacement> = services.iter().map(|s| ServicePlacement::new(&index, s)).collect();
            let text = match (output, service.is_some()) {
                (Output::Json, true) => serde_json::to_string_pretty(&answers[0])? + "\n",
                (Output::Json, false) => serde_json::to_string_pretty(&answers)? + "\n",
                (Output::Table, _) => answers
                    .iter()
                    .map(|a| a.to_table(&cluster))
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            Ok(())
        }
        Command::Inspect { snapshot, output } => {
            let cluster = load_cluster(&snapshot)?;
            let report = ClusterReport::new(&cluster);
            show(output, &report, ClusterReport::to_table)
        }
    }
}

/// Prints `value` on stdout as a table or as pretty JSON.
fn show<T: serde::Serialize>(output: Output, value: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
    let text = match output {
        Output::Table => table(value),
        Output::Json => serde_json::to_string_pretty(value)? + "\n",
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing to stdout")
}

/// Loads and indexes a snapshot; any defect is bad input.
fn load_cluster(path: &std::path::Path) -> anyhow::Result<Cluster> {
    let snapshot = Snapshot::load(path).map_err(|e| BadInput(e.to_string()))?;
    Ok(Cluster::new(snapshot).map_err(|e| BadInput(format!("{}: {e}", path.display())))?)
}

/// The policy governing `cluster` in `path`, or with `any_cluster` the one policy there.
fn choose_policy(path: &std::path::Path, cluster: &str, any_cluster: bool) -> anyhow::Result<policy::Policy> {
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

/// The ECS side of `once` and `run`: with CloudWatch utilisation when the policy balances on actual use.
enum Either {
    Plain(ecs_rebalancer::ecs::sdk::SdkEcs),
    Measured(
        ecs_rebalancer::utilization::WithUtilization<
            ecs_rebalancer::ecs::sdk::SdkEcs,
            ecs_rebalancer::utilization::cloudwatch::CloudWatch,
        >,
    ),
}

/// The ECS side of `once` and `run`, once the ledger table and the cluster are known to exist: a wrong `--table` or
/// `--cluster` is refused with one line naming it, before the lease is touched, so nothing is left behind (no lease
/// item for a cluster that does not exist).
async fn ecs_client(
    conf: &aws_config::SdkConfig,
    args: &ControllerArgs,
    policy: &policy::Policy,
    metrics: &std::sync::Arc<ecs_rebalancer::metrics::Metrics>,
    ledger: &ecs_rebalancer::ledger::dynamo::DynamoLedger,
) -> anyhow::Result<Either> {
    use ecs_rebalancer::ledger::Ledger as _;
    use ecs_rebalancer::policy::Metric;
    use ecs_rebalancer::utilization::{cloudwatch::CloudWatch, Window, WithUtilization};
    let counter = std::sync::Arc::clone(metrics);
    let hook: ecs_rebalancer::ecs::sdk::CallHook =
        std::sync::Arc::new(move |operation, throttled| counter.count_call(operation, throttled));
    let ecs = ecs_rebalancer::ecs::sdk::SdkEcs::from_conf_counted(
        conf,
        args.endpoint_url.as_deref(),
        &args.cluster,
        Some(hook),
    )
    .read_share(args.aws.pacing());
    ledger.read_lease(&args.cluster).await?;
    ecs.check_cluster().await?;
    Ok(match policy.metric {
        Metric::CpuAvailable | Metric::MemAvailable => Either::Measured(WithUtilization::new(
            ecs,
            CloudWatch::from_conf(conf, None, Window::of(policy)),
        )),
        _ => Either::Plain(ecs),
    })
}

/// Each planned move of a `once` cycle, with its reason, where ECS could start its replacement, and whether it was
/// sent (dry-run sends none).
fn planned_moves(report: &ecs_rebalancer::reconcile::CycleReport, dry_run: bool) -> String {
    use std::fmt::Write as _;
    let short = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
    let mut out = String::new();
    for action in &report.plan.actions {
        let target = ecs_rebalancer::reconcile::target_of(action);
        let sent = match report.not_sent.iter().find(|(t, _)| *t == target) {
            _ if dry_run => "planned, not sent (dry-run)".to_owned(),
            Some((_, why)) => format!("not sent: {why}"),
            None => "sent".to_owned(),
        };
        let landing: Vec<String> = action.predicted_landing.iter().map(|a| short(a)).collect();
        let _ = writeln!(out, "  {} {}: {sent}", action.mv.kind(), short(&target));
        let _ = writeln!(out, "    why: {}", action.reason);
        if !landing.is_empty() {
            let _ = writeln!(out, "    lands on any of: {}", landing.join(", "));
        }
    }
    out
}

/// Loads and checks the AWS configuration, checks the account when one is expected, and names this replica.
async fn connect(args: &ControllerArgs) -> anyhow::Result<(aws_config::SdkConfig, ecs_rebalancer::run::Settings)> {
    if let Some(url) = &args.endpoint_url {
        ecs_rebalancer::aws::check_endpoint("--endpoint-url", url)?;
    }
    let conf = ecs_rebalancer::aws::load().await?;
    ecs_rebalancer::aws::guard(&conf, args.aws.expect_account.as_deref()).await?;
    let settings = ecs_rebalancer::run::Settings {
        cluster: args.cluster.clone(),
        holder: ecs_rebalancer::ledger::lease::holder_id(),
        lease: ecs_rebalancer::ledger::lease::LeaseConfig::new(args.lease_duration),
        crash_at: args.crash_at,
    };
    Ok((conf, settings))
}

/// The first log line of a controller whose configuration, table and cluster checked out.
fn started(settings: &ecs_rebalancer::run::Settings, args: &ControllerArgs) {
    tracing::info!(cluster = %settings.cluster, holder = %settings.holder, table = %args.table, "starting");
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested: finishing the step in progress");
}

/// `tracing` to stderr. The controller (`run`, `once`) writes JSON lines when stderr is not a terminal (a
/// container's log driver, cron), and then every line it writes to stderr is JSON, its last word included
/// (`main`). Everything else is a tool for people: text logs, warnings only, beside its plain-text messages (such as
/// `validate`'s `file:line:col: message`). The level comes from `RUST_LOG`. Returns whether logs are JSON.
fn logging(controller: bool) -> bool {
    use tracing_subscriber::EnvFilter;
    let default = if controller { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal);
    let json = controller && !terminal;
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
    json
}

/// One line on a terminal, rewritten as an observation goes: `tasks: 1200/20000`.
fn progress_line(p: ecs_rebalancer::ecs::sdk::Progress) {
    let total = p.total.map(|t| format!("/{t}")).unwrap_or_else(|| " listed".into());
    eprint!("\r\x1b[2K{}: {}{total}", p.what, p.done);
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

/// A single-threaded runtime: the twin and the controller need no more.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

//! The `ecs-rebalancer` command line: parse, set up logging, run the command (`cli/`, one file per command), and turn
//! its result into an exit code. Everything it does lives in the library.

mod cli;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;

use cli::{BadInput, Cli, Command, Exit, EXIT_BAD_INPUT};

/// mimalloc rather than the system's malloc: `simulate`, `twin serve` and every cycle copy and drop whole snapshots,
/// millions of small strings at 5,000 instances (docs/benchmarks.md, Rehearsal at scale).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = logging(cli.command.is_controller());
    let result = match cli.command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Plan(args) => cli::plan::run(args),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Snapshot(args) => cli::snapshot::run(args),
        Command::Demo => cli::demo::run(),
        Command::Init(args) => cli::init::run(args),
        Command::Once(args) => cli::once::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Health(args) => cli::health::run(&args),
        Command::Twin { command } => cli::twin::run(command),
        Command::Placement(args) => cli::placement::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(report(&e, json)),
    }
}

/// Reports a command's failure on stderr, once, and returns its exit code: 2 for bad input, the code an [`Exit`]
/// carries, else 1. When logs are JSON, every line on stderr is JSON: the last word too.
fn report(e: &anyhow::Error, json: bool) -> u8 {
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
        match code {
            3 | 4 => tracing::warn!(exit = code, "{message}"),
            _ => tracing::error!(exit = code, "{message}"),
        }
    } else {
        eprintln!("{message}");
    }
    code
}

/// `tracing` to stderr. The controller (`run`, `once`) writes JSON lines when stderr is not a terminal (a
/// container's log driver, cron), and then every line it writes to stderr is JSON, its last word included
/// ([`report`]). Everything else is a tool for people: text logs, warnings only, beside its plain-text messages (such
/// as `validate`'s `file:line:col: message`). The level comes from `RUST_LOG`. Returns whether logs are JSON.
fn logging(controller: bool) -> bool {
    use tracing_subscriber::EnvFilter;
    // The AWS SDK's own warnings (each failed step of its Region and credential chains, with the SDK's error
    // dump) say again, at length, what the one-line configuration error says: only its errors are shown, unless
    // RUST_LOG asks for more.
    let default = if controller {
        "info,aws_config=error"
    } else {
        "warn,aws_config=error"
    };
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

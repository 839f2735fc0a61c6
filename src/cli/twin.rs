//! `twin serve`: the twin of a snapshot behind ECS's JSON 1.1 protocol (and CloudWatch's GetMetricData), its state
//! written to `--state-out` on SIGUSR1 and on shutdown.

use std::sync::Arc;

use anyhow::Context as _;

use ecs_rebalancer::twin::server::{Faults, Rates, ServeConfig};
use ecs_rebalancer::twin::{Twin, TwinConfig};

use super::{load_cluster, output, runtime, shutdown, ServeArgs, TwinCommand};

pub fn run(command: TwinCommand) -> anyhow::Result<()> {
    match command {
        TwinCommand::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cluster = load_cluster(&args.snapshot)?;
    let twin = Arc::new(Twin::new(
        cluster.into_snapshot(),
        TwinConfig {
            seed: args.seed,
            ..TwinConfig::default()
        },
    ));
    let config = ServeConfig {
        speed: args.tick,
        throttle: args.throttle.then_some(Rates::ECS),
        faults: Faults {
            error_rate: args.error_rate,
            latency: args.latency,
            drop_mutation_responses: args.drop_mutation_responses,
            describe_failures: args.describe_failures,
            protection_failures: 0.0,
        },
        seed: args.seed,
    };
    let save = |twin: &Twin| -> anyhow::Result<()> {
        if let Some(path) = &args.state_out {
            twin.snapshot()
                .save(path)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("state written to {}", path.display());
        }
        Ok(())
    };
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        output::text(&format!("listening on {}\n", listener.local_addr()?))?;
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let stop = shutdown()?;
        let server = ecs_rebalancer::twin::server::serve(twin.clone(), listener, config);
        tokio::pin!(server);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                result = &mut server => {
                    result?;
                    break;
                }
                _ = usr1.recv() => save(&twin)?,
                () = &mut stop => {
                    save(&twin)?;
                    break;
                }
            }
        }
        anyhow::Ok(())
    })
}

//! `simulate`: the controller against the twin of a snapshot, each cycle shown as it goes (`-o table`), then the
//! report, and with `--compare-baselines` the two behaviours used in the field.

use ecs_rebalancer::simulate;
use ecs_rebalancer::twin::TwinConfig;

use super::output::{self, Output};
use super::{choose_policy, load_cluster, runtime, SimulateArgs};

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let cluster = load_cluster(&args.snapshot)?;
    let chosen = choose_policy(&args.policy, cluster.name(), args.any_cluster)?;
    let options = simulate::Options {
        max_cycles: args.max_cycles,
        twin: TwinConfig {
            seed: args.seed,
            ..TwinConfig::default()
        },
        reachable: !args.no_reachable,
        keep_running: args.keep_running,
    };
    let table = matches!(args.output, Output::Table);
    let start = cluster.into_snapshot();
    let rt = runtime()?;
    let mut written = Ok(());
    let (report, end) = rt.block_on(simulate::run(start.clone(), &chosen, options, |p| {
        if table && written.is_ok() {
            written = output::text(&simulate::render_cycle(p, false));
        }
    }));
    written?;
    if let Some(path) = &args.final_snapshot {
        end.save(path)?;
    }
    let baselines = if args.compare_baselines {
        rt.block_on(simulate::baselines(
            &start,
            &chosen,
            options,
            simulate::BASELINE_DURATION,
            &report,
        ))
    } else {
        Vec::new()
    };
    // Through a JSON value, as ever: its keys come out sorted.
    let mut json = serde_json::to_value(&report)?;
    if args.compare_baselines {
        json["baselines"] = serde_json::to_value(&baselines)?;
    }
    output::show(args.output, &json, |_| {
        let mut text = simulate::render_report(&report);
        if args.compare_baselines {
            text = text + "\n" + &simulate::render_comparison(&report, &baselines);
        }
        text
    })
}

//! `demo`: `simulate` on the built-in cluster after a scale-out, every cycle with its loads as bars, then the two
//! behaviours used in the field on the same cluster.

use ecs_rebalancer::{scenarios, simulate};

use super::{output, runtime};

pub fn run() -> anyhow::Result<()> {
    let policy = scenarios::demo_policy();
    output::text(
        "ecs-rebalancer demo: a cluster the morning after an instance replacement and a scale-out.\n\
         Policy: even out task counts per unit of capacity (trigger 0.30, target 0.20); the controller acts on the \
         twin, a simulated ECS.\n\n",
    )?;
    let rt = runtime()?;
    let mut written = Ok(());
    let (report, _) = rt.block_on(simulate::run(
        scenarios::demo_snapshot(),
        &policy,
        simulate::Options::default(),
        |p| {
            if written.is_ok() {
                written = output::text(&simulate::render_cycle(p, true));
            }
        },
    ));
    written?;
    output::text(&format!("\n{}", simulate::render_report(&report)))?;
    let baselines = rt.block_on(simulate::baselines(
        &scenarios::demo_snapshot(),
        &policy,
        simulate::Options::default(),
        simulate::BASELINE_DURATION,
        &report,
    ));
    output::text(&format!(
        "\nThe same cluster with the two behaviours used in the field (2 hours simulated):\n{}",
        simulate::render_comparison(&report, &baselines)
    ))
}

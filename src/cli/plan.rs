//! `plan`: one cycle's plan on a snapshot, with the reachable-balance reference unless `--no-reachable`.

use ecs_rebalancer::plan;

use super::{choose_policy, load_cluster, output, BadInput, PlanArgs};

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let cluster = load_cluster(&args.snapshot)?;
    let chosen = &choose_policy(&args.policy, cluster.name(), args.any_cluster)?;
    let now = match args.now {
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
        plan::Episode {
            active: args.continuing,
        },
    );
    if !args.no_reachable {
        result.reachable = Some(plan::reachable::reachable(cluster.snapshot(), chosen, now));
    }
    output::show(args.output, &result, plan::render::table)
}

//! `inspect`: a snapshot's instances with their tasks, reservations and use, and its inconsistencies.

use ecs_rebalancer::report::ClusterReport;

use super::{load_cluster, output, InspectArgs};

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let cluster = load_cluster(&args.snapshot)?;
    let report = ClusterReport::new(&cluster);
    output::show(args.output, &report, ClusterReport::to_table)
}

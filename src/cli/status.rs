//! `status`: what the ledger says about a cluster (leader, actions in flight and recent, cooldowns).

use ecs_rebalancer::ledger::dynamo::DynamoLedger;
use ecs_rebalancer::ledger::Ledger as _;
use ecs_rebalancer::status::Status;

use super::{output, runtime, StatusArgs};

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let cluster = &args.cluster;
    let status = runtime()?.block_on(async {
        let conf = ecs_rebalancer::aws::load().await?;
        let ledger = DynamoLedger::from_conf(&conf, &args.table);
        let now = chrono::Utc::now();
        let from = now - chrono::Duration::from_std(args.since).unwrap_or_else(|_| chrono::Duration::days(1));
        let mut actions = ledger.action_log(cluster).await?;
        actions.records.retain(|a| a.state.in_flight() || a.updated_at > from);
        let lease = ledger.read_lease(cluster).await?;
        let cooldowns = ledger.cooldowns(cluster, now).await?;
        anyhow::Ok(Status::new(cluster, now, lease, actions, cooldowns))
    })?;
    output::show(args.output, &status, Status::to_table)
}

//! `init`: the ledger table, created or found as it should be.

use ecs_rebalancer::ledger::dynamo::{create_table, TableSetup};

use super::{output, runtime, InitArgs};

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let table = &args.table;
    runtime()?.block_on(async {
        let conf = ecs_rebalancer::aws::load().await?;
        output::text(&match create_table(&conf, table).await? {
            TableSetup::Created => format!("created table {table} (on-demand, TTL on expiresAt)\n"),
            TableSetup::AlreadyThere => {
                format!("table {table} already exists with the ledger's keys and TTL on expiresAt; left as it is\n")
            }
        })
    })
}

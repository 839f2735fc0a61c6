//! `run`: the controller, continuously, under the lease, with `/metrics`, `/healthz` and `/readyz` on `--listen`.

use std::sync::Arc;

use anyhow::Context as _;

use ecs_rebalancer::ledger::dynamo::DynamoLedger;
use ecs_rebalancer::metrics::Metrics;
use ecs_rebalancer::run::PolicySource;

use super::controller::{connect, ecs_client, started};
use super::{runtime, shutdown, BadInput, RunArgs};

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let controller = &args.controller;
    let source = PolicySource::open(&controller.policy, &controller.cluster).map_err(|e| BadInput(e.to_string()))?;
    runtime()?.block_on(async {
        let (conf, settings) = connect(controller).await?;
        let ledger = DynamoLedger::from_conf(&conf, &controller.table);
        let metrics = Arc::new(Metrics::default());
        let ecs = ecs_client(&conf, controller, source.watch(), &metrics, &ledger).await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        started(&settings, controller);
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
        let server = axum::serve(listener, ecs_rebalancer::metrics::router(metrics.clone()));
        tokio::spawn(async move { server.await });
        ecs_rebalancer::run::run(&ecs, &ledger, source, &settings, &metrics, shutdown()).await?;
        anyhow::Ok(())
    })
}

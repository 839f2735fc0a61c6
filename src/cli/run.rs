//! `run`: the controller, continuously, under the lease, with `/metrics`, `/healthz` and `/readyz` on `--listen`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::controller::{connect, ecs_client, finish_source, open_source, started};
use super::{runtime, shutdown, RunArgs};
use ecs_rebalancer::ledger::dynamo::DynamoLedger;
use ecs_rebalancer::metrics::Metrics;
use ecs_rebalancer::run::repeats::{Repeats, REPEAT_EVERY};

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let controller = &args.controller;
    let opened = open_source(controller)?;
    runtime()?.block_on(async {
        // First, before any AWS request: an address that cannot be served fails start-up at once.
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot serve /metrics, /healthz and /readyz", args.listen))?;
        let stop = shutdown()?;
        let (conf, settings) = connect(controller).await?;
        let source = finish_source(opened, &conf, controller)?;
        let ledger = DynamoLedger::from_conf(&conf, &controller.table);
        let metrics = Arc::new(Metrics::default());
        let ecs = ecs_client(&conf, controller, source.watch(), &metrics, &ledger).await?;
        started(&settings, controller);
        serve_metrics(listener, Arc::clone(&metrics))?;
        ecs_rebalancer::run::run(&ecs, &ledger, source, &settings, &metrics, stop).await?;
        anyhow::Ok(())
    })
}

const SERVER_STOPPED: &str = "metrics server stopped: /metrics, /healthz and /readyz are no longer served";

/// Serves `/metrics`, `/healthz` and `/readyz` in the background. An error after start-up is logged with the address
/// and the controller goes on (its cycles matter more than its metrics; a liveness probe on `/healthz`, where there
/// is one, restarts it if the server is gone for good).
fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, "serving /metrics, /healthz, /readyz");
    let listener = Logged {
        listener,
        addr,
        repeats: Repeats::new(REPEAT_EVERY),
    };
    let server = axum::serve(listener, ecs_rebalancer::metrics::router(metrics));
    tokio::spawn(async move {
        // axum documents that this never ends; should that change, it is said.
        match server.await {
            Ok(()) => tracing::error!(addr = %addr, "{SERVER_STOPPED}"),
            Err(e) => tracing::error!(addr = %addr, error = %e, "{SERVER_STOPPED}"),
        }
    });
    Ok(())
}

/// The metrics server's listener. Like axum's own, it skips connections reset before they were accepted and retries
/// any other failed accept a second later (out of file descriptors, say); unlike axum's (without its `tracing`
/// feature), it says so: logged as an error with the address, an identical one once per [`REPEAT_EVERY`] with the
/// count held back.
struct Logged {
    listener: TcpListener,
    addr: SocketAddr,
    repeats: Repeats,
}

impl axum::serve::Listener for Logged {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(e) if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) => {}
                Err(e) => {
                    if let Some(held_back) = self.repeats.admit(&e.to_string(), Instant::now()) {
                        tracing::error!(
                            addr = %self.addr,
                            error = %e,
                            repeated = held_back,
                            "metrics server cannot accept a connection; retrying every second"
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

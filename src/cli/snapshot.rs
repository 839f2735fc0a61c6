//! `snapshot`: a live cluster (or a served twin) captured through the AWS SDK, with CloudWatch utilisation on
//! request.

use std::io::IsTerminal as _;

use ecs_rebalancer::ecs::sdk::{Progress, SdkEcs};
use ecs_rebalancer::ecs::EcsApi as _;
use ecs_rebalancer::utilization::{cloudwatch::CloudWatch, Window, WithUtilization};

use super::{output, runtime, SnapshotArgs};

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.endpoint_url {
        ecs_rebalancer::aws::check_endpoint("--endpoint-url", url)?;
    }
    let snapshot = runtime()?.block_on(async {
        let conf = ecs_rebalancer::aws::load().await?;
        ecs_rebalancer::aws::guard(&conf, args.aws.expect_account.as_deref()).await?;
        let ecs = SdkEcs::from_conf(&conf, args.endpoint_url.as_deref(), &args.cluster).read_share(args.aws.pacing());
        let ecs = match std::io::stderr().is_terminal() {
            true => ecs.on_progress(progress_line),
            false => ecs,
        };
        let snapshot = if args.utilization {
            let window = Window {
                window: args.window,
                stale_after: args.stale_after,
            };
            WithUtilization::new(ecs, CloudWatch::from_conf(&conf, None, window))
                .observe()
                .await
        } else {
            ecs.observe().await
        };
        if std::io::stderr().is_terminal() {
            eprint!("\r\x1b[2K");
        }
        anyhow::Ok(snapshot?)
    })?;
    match &args.output {
        Some(path) => Ok(snapshot.save(path)?),
        None => output::text(&output::json(&snapshot)?),
    }
}

/// One line on a terminal, rewritten as an observation goes: `tasks: 1200/20000`.
fn progress_line(p: Progress) {
    let total = p.total.map(|t| format!("/{t}")).unwrap_or_else(|| " listed".into());
    eprint!("\r\x1b[2K{}: {}{total}", p.what, p.done);
}

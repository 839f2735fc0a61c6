//! `once`: one controller cycle under the lease; the exit code says what happened (0 ran, 3 not the leader, 4
//! refused to act).

use std::fmt::Write as _;
use std::sync::Arc;

use ecs_rebalancer::ledger::dynamo::DynamoLedger;
use ecs_rebalancer::metrics::Metrics;
use ecs_rebalancer::moves::{some_of, LANDING_SHOWN};
use ecs_rebalancer::policy::Mode;
use ecs_rebalancer::reconcile::{target_of, CycleReport};
use ecs_rebalancer::run::{report_update, OnceOutcome};
use ecs_rebalancer::source::Update;

use super::controller::{connect, ecs_client, finish_source, open_source, started};
use super::{output, runtime, BadInput, ControllerArgs, Exit};

pub fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let opened = open_source(&args)?;
    runtime()?.block_on(async {
        let (conf, settings) = connect(&args).await?;
        let mut source = finish_source(opened, &conf, &args)?;
        let metrics = Arc::new(Metrics::default());
        // Cron semantics: fetch, validate, one cycle, exit. A source that gives no good revision is exit 2.
        let update = source.fetch_now().await;
        if let Some(update) = &update {
            report_update(update, &source, &metrics, None);
        }
        let Some(policy) = source.current().cloned() else {
            let why = match update {
                Some(Update::Invalid { revision, errors }) => {
                    format!("revision {revision} is invalid:\n{}", errors.join("\n"))
                }
                Some(Update::FetchFailed(why)) => why,
                _ => "no policy".to_owned(),
            };
            return Err(BadInput(format!("--policy {}: {why}\nnothing done", source.location())).into());
        };
        let ledger = DynamoLedger::from_conf(&conf, &args.table);
        let ecs = ecs_client(&conf, &args, source.watch(), &metrics, &ledger).await?;
        started(&settings, &args);
        let dry_run = policy.mode == Mode::DryRun;
        match ecs_rebalancer::run::once(&ecs, &ledger, &source, &settings, &metrics).await? {
            OnceOutcome::Ran(report) => output::text(&ran(&report, dry_run)),
            OnceOutcome::NotLeader(holder) => Err(Exit(
                3,
                format!(
                    "another replica holds the lease ({}); nothing done",
                    holder.map_or_else(|| "?".into(), |f| format!("{} epoch {}", f.holder, f.epoch))
                ),
            )
            .into()),
            OnceOutcome::Refused(why) => Err(Exit(4, format!("refused to act: {why}")).into()),
        }
    })
}

/// The cycle's summary line, then each planned move with its reason, where ECS could start its replacement, and
/// whether it was sent (dry-run sends none).
fn ran(report: &CycleReport, dry_run: bool) -> String {
    let short = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
    let mut out = format!(
        "{}: {} sent{}, {} settled, {} in flight\n",
        // The score now, unless the summary says it already (as every summary but a plan's does).
        if report.plan.summary.starts_with("score ") {
            report.plan.summary.clone()
        } else {
            format!("score {:.3}, {}", report.plan.before.score, report.plan.summary)
        },
        report.acted.len() + report.unanswered.len(),
        match report.unanswered.len() {
            0 => String::new(),
            n => format!(" ({n} without ECS's answer)"),
        },
        report.settled.len(),
        report.in_flight
    );
    for action in &report.plan.actions {
        let target = target_of(action);
        let unanswered = report.unanswered.iter().find(|(t, _)| *t == target);
        let sent = match report.not_sent.iter().find(|(t, _)| *t == target) {
            _ if dry_run => "planned, not sent (dry-run)".to_owned(),
            Some((_, why)) => format!("not sent: {why}"),
            None => match unanswered {
                Some((_, why)) => format!("sent, but ECS's answer was lost; the next cycle reads what happened: {why}"),
                None => "sent".to_owned(),
            },
        };
        let _ = writeln!(out, "  {} {}: {sent}", action.mv.kind(), short(&target));
        let _ = writeln!(out, "    why: {}", action.reason);
        if !action.predicted_landing.is_empty() {
            let landing = some_of(&action.predicted_landing, LANDING_SHOWN, short);
            let _ = writeln!(out, "    lands on any of: {landing}");
        }
    }
    out
}

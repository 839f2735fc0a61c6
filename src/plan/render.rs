//! The `plan` command's table: each instance's load as a bar, before → after, then the actions, then how many
//! targets were skipped for each reason. An SRE should see the imbalance at a glance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Plan, PlannedAction};
use crate::moves::{some_of, Move, LANDING_SHOWN};

const BAR: usize = 24;

fn bar(load: Option<f64>, max: f64) -> String {
    match load {
        None => format!("{:<width$}", "unknown", width = BAR),
        Some(l) => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bounded to 0..=BAR
            let filled = if max > 0.0 {
                ((l / max) * BAR as f64).round().clamp(0.0, BAR as f64) as usize
            } else {
                0
            };
            format!("{}{}", "█".repeat(filled), "·".repeat(BAR - filled))
        }
    }
}

/// The plan as a terminal table.
pub fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {} · policy {} · metric {} · mode {}",
        plan.cluster, plan.policy, plan.metric, plan.mode
    );
    let reachable = plan.reachable.as_ref().map_or_else(String::new, |r| {
        format!(
            ", reachable ≈ {:.2}{}",
            r.score,
            if r.complete { "" } else { " (search cut short)" }
        )
    });
    let _ = writeln!(
        out,
        "score {:.3} → {:.3} expected (trigger {}, target {}{reachable}): {}",
        plan.before.score, plan.expected_score, plan.trigger, plan.target, plan.summary
    );
    if let Some(cause) = plan.reachable.as_ref().and_then(|r| r.cause.as_ref()) {
        let _ = writeln!(out, "the target is out of reach: {cause}");
    }
    let max = plan
        .before
        .instances
        .iter()
        .chain(&plan.after.instances)
        .filter_map(|i| i.load)
        .fold(0.0f64, f64::max);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<20} {:>5}  {:<w$} {:>6}    {:<w$} {:>6}",
        "INSTANCE",
        "SIZE",
        "BEFORE",
        "",
        "AFTER (expected)",
        "",
        w = BAR
    );
    for (b, a) in plan.before.instances.iter().zip(&plan.after.instances) {
        let name = b.ec2_instance_id.as_deref().unwrap_or(&b.container_instance_arn);
        let num = |l: Option<f64>| l.map_or_else(|| "-".to_owned(), |l| format!("{l:.2}"));
        let arrow = if a.load == b.load { " " } else { "→" };
        let _ = writeln!(
            out,
            "{name:<20} {:>5.2}  {} {:>6} {arrow}  {} {:>6}",
            b.capacity,
            bar(b.load, max),
            num(b.load),
            bar(a.load, max),
            num(a.load)
        );
    }
    let _ = writeln!(out);
    if plan.actions.is_empty() {
        let _ = writeln!(out, "no actions");
    } else {
        let _ = writeln!(out, "actions:");
        for (k, a) in plan.actions.iter().enumerate() {
            action(&mut out, plan, k + 1, a);
        }
    }
    if !plan.skipped.is_empty() {
        let mut counts: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for s in &plan.skipped {
            counts.entry(s.label).or_insert((0, &s.reason)).0 += 1;
        }
        let _ = writeln!(out, "\nskipped ({} targets; -o json lists each):", plan.skipped.len());
        for (label, (n, example)) in counts {
            let _ = writeln!(out, "  {n:>5} {label:<20} e.g. {example}");
        }
    }
    out
}

/// One planned action, numbered `n`: what, why, and where ECS could start its replacement(s).
fn action(out: &mut String, plan: &Plan, n: usize, a: &PlannedAction) {
    let target = a.mv.target();
    let short = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
    let (target, of_service) = match &a.mv {
        Move::StopTask { service_name, .. } => (target, format!(" of {service_name}")),
        Move::RedeployService { .. } => (target, String::new()),
        Move::DrainInstance {
            container_instance_arn, ..
        } => (
            plan.before
                .instances
                .iter()
                .find(|i| &i.container_instance_arn == container_instance_arn)
                .and_then(|i| i.ec2_instance_id.as_deref())
                .unwrap_or(target),
            String::new(),
        ),
    };
    let _ = writeln!(
        out,
        "  {n}. {} {}{of_service} (restarts {}, expected score after {:.3})",
        a.mv.kind(),
        short(target),
        a.tasks_restarted,
        a.score_after
    );
    let _ = writeln!(out, "     why: {}", a.reason);
    let name_of = |arn: &str| {
        plan.before
            .instances
            .iter()
            .find(|i| i.container_instance_arn == arn)
            .and_then(|i| i.ec2_instance_id.clone())
            .unwrap_or_else(|| short(arn))
    };
    let landing = some_of(&a.predicted_landing, LANDING_SHOWN, name_of);
    let odds = if a.improving_landing.is_empty() {
        String::new()
    } else {
        format!(
            " ({} of {} improve)",
            a.improving_landing.len(),
            a.predicted_landing.len()
        )
    };
    let _ = writeln!(out, "     lands on any of{odds}: {landing}");
}

//! Raw → defaulted [`Policy`], and back (for writing a policy out, and the round-trip tests).
//!
//! Runs only on documents the validator passed, so a failure here means the validator and this file disagree; it is
//! still reported as an error, never a panic.

use std::path::Path;

use super::duration;
use super::raw::{
    RawBudgets, RawCooldown, RawCountOrPercent, RawExclude, RawMetadata, RawPolicy, RawSpec, RawThreshold,
    RawUtilization,
};
use super::types::{
    defaults, ActionKind, Budgets, Cooldown, CountOrPercent, Exclude, Metric, Mode, Pattern, Policy, Threshold,
    UtilizationSettings,
};
use super::validate::{parse_percent, API_VERSION, KIND};

/// Fills every default and turns strings into typed values.
pub fn to_policy(raw: RawPolicy, source: &Path) -> Result<Policy, String> {
    let spec = raw.spec;
    let pattern = |text: &String| Pattern::new(text).map_err(|e| format!("invalid glob {text:?}: {e}"));
    let patterns = |texts: &[String]| texts.iter().map(pattern).collect::<Result<Vec<_>, _>>();
    let glob_map = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| Ok((k.clone(), pattern(v)?)))
            .collect::<Result<_, String>>()
    };
    let dur = |text: Option<&String>, default| text.map_or(Ok(default), |t| duration::parse(t));

    let metric = Metric::parse(&spec.metric).ok_or_else(|| format!("unknown metric {:?}", spec.metric))?;
    let mut actions = match &spec.actions {
        Some(names) => names
            .iter()
            .map(|a| ActionKind::parse(a).ok_or_else(|| format!("unknown action {a:?}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => defaults::ACTIONS.to_vec(),
    };
    actions.sort();
    actions.dedup();
    let mode = match &spec.mode {
        Some(m) => Mode::parse(m).ok_or_else(|| format!("unknown mode {m:?}"))?,
        None => defaults::MODE,
    };
    let exclude = spec.exclude.unwrap_or_default();
    let budgets = spec.budgets.unwrap_or_default();
    let cooldown = spec.cooldown.unwrap_or_default();
    let utilization = spec.utilization.unwrap_or_default();

    Ok(Policy {
        name: raw.metadata.name,
        description: raw.metadata.description,
        source: source.to_owned(),
        revision: String::new(),
        clusters: patterns(&spec.clusters)?,
        metric,
        threshold: Threshold {
            trigger: spec.threshold.trigger,
            target: spec.threshold.target,
        },
        actions,
        mode,
        interval: dur(spec.interval.as_ref(), defaults::INTERVAL)?,
        exclude: Exclude {
            services: patterns(&exclude.services)?,
            service_tags: glob_map(&exclude.service_tags)?,
            instance_attributes: glob_map(&exclude.instance_attributes)?,
        },
        budgets: Budgets {
            max_unavailable: budgets
                .max_unavailable
                .or(budgets.per_cycle)
                .unwrap_or(defaults::MAX_UNAVAILABLE),
            per_hour: budgets.per_hour.unwrap_or(defaults::PER_HOUR),
            per_service: match budgets.per_service {
                None => defaults::PER_SERVICE,
                Some(RawCountOrPercent::Count(n)) => CountOrPercent::Count(n),
                Some(RawCountOrPercent::Percent(p)) => CountOrPercent::Percent(parse_percent(&p)?),
            },
            concurrent_drains: budgets.concurrent_drains.unwrap_or(defaults::CONCURRENT_DRAINS),
        },
        cooldown: Cooldown {
            instance: dur(cooldown.instance.as_ref(), defaults::COOLDOWN_INSTANCE)?,
            service: dur(cooldown.service.as_ref(), defaults::COOLDOWN_SERVICE)?,
            new_instance: dur(cooldown.new_instance.as_ref(), defaults::COOLDOWN_NEW_INSTANCE)?,
        },
        utilization: UtilizationSettings {
            max_unknown_share: utilization.max_unknown_share.unwrap_or(defaults::MAX_UNKNOWN_SHARE),
            window: dur(utilization.window.as_ref(), defaults::UTILIZATION_WINDOW)?,
            stale_after: dur(utilization.stale_after.as_ref(), defaults::UTILIZATION_STALE_AFTER)?,
        },
    })
}

/// Writes a policy back in raw form with every default spelled out, so the file says exactly what runs.
pub fn to_raw(policy: &Policy) -> RawPolicy {
    let texts = |ps: &[Pattern]| ps.iter().map(|p| p.as_str().to_owned()).collect();
    let glob_map = |m: &std::collections::BTreeMap<String, Pattern>| {
        m.iter().map(|(k, v)| (k.clone(), v.as_str().to_owned())).collect()
    };
    let fmt = |d| Some(duration::format(d));
    RawPolicy {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: RawMetadata {
            name: policy.name.clone(),
            description: policy.description.clone(),
        },
        spec: RawSpec {
            clusters: texts(&policy.clusters),
            metric: policy.metric.as_str().into(),
            threshold: RawThreshold {
                trigger: policy.threshold.trigger,
                target: policy.threshold.target,
            },
            actions: Some(policy.actions.iter().map(|a| a.as_str().to_owned()).collect()),
            mode: Some(policy.mode.as_str().into()),
            interval: fmt(policy.interval),
            exclude: Some(RawExclude {
                services: texts(&policy.exclude.services),
                service_tags: glob_map(&policy.exclude.service_tags),
                instance_attributes: glob_map(&policy.exclude.instance_attributes),
            }),
            budgets: Some(RawBudgets {
                max_unavailable: Some(policy.budgets.max_unavailable),
                per_cycle: None,
                per_hour: Some(policy.budgets.per_hour),
                per_service: Some(match policy.budgets.per_service {
                    CountOrPercent::Count(n) => RawCountOrPercent::Count(n),
                    CountOrPercent::Percent(p) => RawCountOrPercent::Percent(format!("{p}%")),
                }),
                concurrent_drains: Some(policy.budgets.concurrent_drains),
            }),
            cooldown: Some(RawCooldown {
                instance: fmt(policy.cooldown.instance),
                service: fmt(policy.cooldown.service),
                new_instance: fmt(policy.cooldown.new_instance),
            }),
            utilization: Some(RawUtilization {
                max_unknown_share: Some(policy.utilization.max_unknown_share),
                window: fmt(policy.utilization.window),
                stale_after: fmt(policy.utilization.stale_after),
            }),
        },
    }
}

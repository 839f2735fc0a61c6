//! The policy as the rest of the program sees it: validated, typed, every default filled in.
//!
//! Field meanings and defaults are documented for users in `docs/policy.md`; the defaults live in [`defaults`] only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::{ContainerInstance, Service};

/// The defaults, in one place (descheduler's `SetDefaults_*` shape).
pub mod defaults {
    use std::time::Duration;

    pub const MODE: super::Mode = super::Mode::DryRun;
    pub const ACTIONS: &[super::ActionKind] = &[super::ActionKind::StopTasks];
    pub const INTERVAL: Duration = Duration::from_secs(5 * 60);
    pub const MAX_UNAVAILABLE: u32 = 5;
    pub const PER_HOUR: u32 = 60;
    pub const PER_SERVICE: super::CountOrPercent = super::CountOrPercent::Count(1);
    pub const CONCURRENT_DRAINS: u32 = 1;
    pub const COOLDOWN_INSTANCE: Duration = Duration::from_secs(10 * 60);
    pub const COOLDOWN_SERVICE: Duration = Duration::from_secs(10 * 60);
    pub const COOLDOWN_NEW_INSTANCE: Duration = Duration::from_secs(5 * 60);
    pub const MAX_UNKNOWN_SHARE: f64 = 0.20;
    pub const UTILIZATION_WINDOW: Duration = Duration::from_secs(5 * 60);
    pub const UTILIZATION_STALE_AFTER: Duration = Duration::from_secs(10 * 60);
    /// Shorter intervals would spend ECS's shared read throttle on little news.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
}

/// Declares a closed set of names a policy may write, with their spellings.
macro_rules! policy_names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every valid spelling, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

policy_names! {
    /// What "load" means for the score.
    Metric {
        /// Service tasks per instance, per unit of the instance's capacity.
        Count => "count",
        /// Reserved CPU as a share of registered CPU (from `remainingResources`).
        CpuUnreserved => "cpu-unreserved",
        /// Reserved memory as a share of registered memory.
        MemUnreserved => "mem-unreserved",
        /// Observed CPU use (Container Insights) as a share of capacity.
        CpuAvailable => "cpu-available",
        /// Observed memory use as a share of capacity.
        MemAvailable => "mem-available",
    }
}

policy_names! {
    /// A kind of move the controller may make.
    ActionKind {
        /// Stop single service tasks so ECS places replacements elsewhere.
        StopTasks => "stop-tasks",
        /// Force a new deployment of a whole service.
        RedeployServices => "redeploy-services",
        /// Set an instance DRAINING so ECS moves its service tasks, then ACTIVE again.
        DrainInstances => "drain-instances",
    }
}

policy_names! {
    /// Whether moves are carried out.
    Mode {
        /// Plan and log only.
        DryRun => "dry-run",
        /// Carry the moves out.
        Enforce => "enforce",
    }
}

/// A compiled glob that remembers how it was written (and compares by that text).
#[derive(Clone)]
pub struct Pattern {
    text: String,
    matcher: globset::GlobMatcher,
}

impl Pattern {
    /// Compiles a glob (`*`, `?`, `[abc]`, `{a,b}`); the error text says what is wrong with it.
    pub fn new(text: &str) -> Result<Pattern, String> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Pattern {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_match(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate)
    }

    /// True when the text has no glob metacharacters, so it names exactly one thing.
    pub fn is_literal(&self) -> bool {
        !self.text.contains(['*', '?', '[', '{'])
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

/// A task count, or a percentage of a service's desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOrPercent {
    Count(u32),
    Percent(u32),
}

impl CountOrPercent {
    /// The count for a service of `desired` tasks; percentages round down, as a disruption budget should, but never
    /// below one: a budget bounds the pace and never makes a move impossible.
    pub fn resolve(self, desired: u32) -> u32 {
        match self {
            CountOrPercent::Count(n) => n,
            CountOrPercent::Percent(p) => u32::try_from(u64::from(desired) * u64::from(p) / 100)
                .unwrap_or(u32::MAX)
                .max(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Start rebalancing when the score is above this.
    pub trigger: f64,
    /// Once started, keep going until the score is at or below this.
    pub target: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exclude {
    pub services: Vec<Pattern>,
    /// Tag key → value glob: a service carrying the tag with a matching value is left alone.
    pub service_tags: BTreeMap<String, Pattern>,
    /// Attribute name → value glob: an instance with a matching attribute is neither source nor destination.
    pub instance_attributes: BTreeMap<String, Pattern>,
}

impl Exclude {
    /// Why the service is excluded, if it is.
    pub fn service_reason(&self, service: &Service) -> Option<String> {
        if let Some(p) = self.services.iter().find(|p| p.is_match(&service.service_name)) {
            return Some(format!("service name matches exclude.services {:?}", p.as_str()));
        }
        self.service_tags.iter().find_map(|(key, value)| {
            let tag = service.tag(key)?;
            value
                .is_match(tag)
                .then(|| format!("tag {key}={tag} matches exclude.serviceTags"))
        })
    }

    /// Why the instance is excluded, if it is.
    pub fn instance_reason(&self, instance: &ContainerInstance) -> Option<String> {
        self.instance_attributes.iter().find_map(|(name, value)| {
            let actual = instance.attribute(name)?;
            value
                .is_match(actual)
                .then(|| format!("attribute {name}={actual} matches exclude.instanceAttributes"))
        })
    }
}

/// How fast the controller may disrupt (`plan::budget` checks them all). A budget bounds the pace and never makes
/// a move impossible: a move bigger than a budget goes alone, when nothing else is in flight or planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Tasks held below their service's desired count by the controller's moves at once, over the cluster.
    pub max_unavailable: u32,
    /// Tasks restarted per rolling hour.
    pub per_hour: u32,
    /// Tasks of one service stopped by the controller at once, on top of the service's own
    /// `minimumHealthyPercent` (deployments and drains are paced by ECS within the service's own percentages).
    pub per_service: CountOrPercent,
    /// Instances this controller has DRAINING at once.
    pub concurrent_drains: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    /// After a move touches an instance (source or destination), it is left alone this long.
    pub instance: Duration,
    /// After a move touches a service, its tasks are left alone this long.
    pub service: Duration,
    /// An instance registered less than this long ago is not scored, not a source and not a destination.
    pub new_instance: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UtilizationSettings {
    /// Above this share of instances with unknown utilisation, the cycle plans nothing.
    pub max_unknown_share: f64,
    /// The averaging window for observed utilisation.
    pub window: Duration,
    /// A data point older than this is unknown.
    pub stale_after: Duration,
}

/// A validated, defaulted balance policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    /// The file the policy came from.
    pub source: PathBuf,
    /// The revision of the policy source it was loaded from (`policy::source`): a git commit id, or `sha256:` and
    /// the hash of the files' content for a plain path. Empty when it was loaded outside a source (`validate`,
    /// `plan`, `simulate`).
    pub revision: String,
    pub clusters: Vec<Pattern>,
    pub metric: Metric,
    pub threshold: Threshold,
    /// Allowed moves, sorted, without duplicates.
    pub actions: Vec<ActionKind>,
    pub mode: Mode,
    pub interval: Duration,
    pub exclude: Exclude,
    pub budgets: Budgets,
    pub cooldown: Cooldown,
    pub utilization: UtilizationSettings,
}

impl Policy {
    /// Whether this policy governs the named cluster.
    pub fn applies_to(&self, cluster: &str) -> bool {
        self.clusters.iter().any(|p| p.is_match(cluster))
    }

    pub fn allows(&self, action: ActionKind) -> bool {
        self.actions.contains(&action)
    }
}

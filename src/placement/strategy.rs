//! Placement strategies: from the instances a task fits on, the ones ECS would choose among.
//!
//! docs/ecs.md: Placement (task-placement-strategies): strategies are best effort and applied in list order. Each rule
//! here keeps the instances that score best under it, ties included, and hands them to the next rule; what is left
//! after the last rule is the candidate set. ECS does not document its final tie-break, so the prediction is the
//! whole set *(inference)*, and a move is only as predictable as every member of it.

use std::borrow::Cow;

use crate::model::{InstanceIdx, PlacementStrategy, PlacementStrategyType};

use super::fit::Unpredictable;

/// The attribute ECS's default service placement spreads over first.
pub const AVAILABILITY_ZONE: &str = "ecs.availability-zone";

/// A resource binpack packs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinpackField {
    Cpu,
    Memory,
}

/// One rule of a strategy chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The instance with the least of this resource left (that still fits).
    Binpack(BinpackField),
    /// The instance with the fewest tasks of the group (`instanceId`, alias `host`).
    SpreadInstance,
    /// The instances whose value of this attribute has the fewest tasks of the group.
    SpreadAttribute(String),
    /// Any instance: the chain ends here with every remaining instance a candidate.
    Random,
}

/// Reads a service's `placementStrategy` into rules.
///
/// An empty list means ECS's default for services (docs/ecs.md: Placement, ecs_services): instances in the Availability
/// Zone with the fewest tasks of the service first, then the instance with the fewest tasks of the service, which
/// is `spread(attribute:ecs.availability-zone)` followed by `spread(instanceId)`.
pub fn chain(strategies: &[PlacementStrategy]) -> Result<Vec<Rule>, Unpredictable> {
    if strategies.is_empty() {
        return Ok(vec![
            Rule::SpreadAttribute(AVAILABILITY_ZONE.into()),
            Rule::SpreadInstance,
        ]);
    }
    strategies
        .iter()
        .map(|s| {
            let field = s.field.as_deref().unwrap_or("");
            match &s.kind {
                PlacementStrategyType::Binpack => match field.to_ascii_lowercase().as_str() {
                    "cpu" => Ok(Rule::Binpack(BinpackField::Cpu)),
                    "memory" => Ok(Rule::Binpack(BinpackField::Memory)),
                    _ => Err(Unpredictable(format!(
                        "binpack on {field:?} is not a documented field (cpu, memory)"
                    ))),
                },
                PlacementStrategyType::Spread => match field {
                    "instanceId" | "host" => Ok(Rule::SpreadInstance),
                    f => match f.strip_prefix("attribute:") {
                        Some(name) if !name.is_empty() => Ok(Rule::SpreadAttribute(name.to_owned())),
                        _ => Err(Unpredictable(format!(
                            "spread on {field:?} is not instanceId, host or attribute:*"
                        ))),
                    },
                },
                PlacementStrategyType::Random => Ok(Rule::Random),
                PlacementStrategyType::Other(t) => {
                    Err(Unpredictable(format!("placement strategy type {t:?} is not modelled")))
                }
            }
        })
        .collect()
}

/// What the rules need to know about instances (after any overlay).
pub trait Scores {
    /// CPU or memory left on the instance.
    fn remaining(&self, instance: InstanceIdx, field: BinpackField) -> i64;
    /// Tasks of the group being placed that run on the instance.
    fn group_count(&self, instance: InstanceIdx) -> u32;
    /// Every instance running tasks of the group, with the count (instances not listed run none).
    fn group_instances(&self) -> &[(InstanceIdx, u32)];
    /// Every instance's value of an attribute, by instance position.
    fn attribute_column(&self, name: &str) -> Cow<'_, Column>;
}

/// One attribute's values across instances, interned: [`Column::id`] numbers an instance's value, and instances
/// without the attribute share the id `distinct` (one bucket of their own *(inference)*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Per instance position, the id of its value.
    ids: Vec<u32>,
    /// How many distinct values there are; also the id of "no value".
    pub distinct: u32,
}

impl Column {
    pub fn new(instances: &[crate::model::ContainerInstance], name: &str) -> Column {
        let mut values: Vec<&str> = Vec::new();
        let mut ids: Vec<Option<u32>> = Vec::with_capacity(instances.len());
        for i in instances {
            ids.push(i.attribute(name).map(|v| match values.iter().position(|x| *x == v) {
                Some(k) => u32::try_from(k).unwrap_or(u32::MAX),
                None => {
                    values.push(v);
                    u32::try_from(values.len() - 1).unwrap_or(u32::MAX)
                }
            }));
        }
        let distinct = u32::try_from(values.len()).unwrap_or(u32::MAX);
        Column {
            ids: ids.into_iter().map(|id| id.unwrap_or(distinct)).collect(),
            distinct,
        }
    }

    /// The id of the instance's value.
    pub fn id(&self, instance: InstanceIdx) -> u32 {
        self.ids[instance.get()]
    }
}

/// Narrows `feasible` rule by rule to the candidate set.
pub fn candidates(rules: &[Rule], feasible: &[InstanceIdx], scores: &impl Scores) -> Vec<InstanceIdx> {
    let mut set = feasible.to_vec();
    for rule in rules {
        if set.len() <= 1 {
            break;
        }
        set = match rule {
            Rule::Random => break,
            Rule::Binpack(field) => keep_min(&set, |i| scores.remaining(i, *field)),
            Rule::SpreadInstance => keep_min(&set, |i| i64::from(scores.group_count(i))),
            Rule::SpreadAttribute(name) => {
                let column = scores.attribute_column(name);
                // Tasks of the group per attribute value, counted over every instance (not only feasible ones):
                // the point of spreading is the whole group's balance across values.
                let mut per_value = vec![0i64; column.distinct as usize + 1];
                for &(i, n) in scores.group_instances() {
                    per_value[column.id(i) as usize] += i64::from(n);
                }
                keep_min(&set, |i| per_value[column.id(i) as usize])
            }
        };
    }
    set
}

/// The members of `set` with the lowest key, in their original order.
fn keep_min(set: &[InstanceIdx], key: impl Fn(InstanceIdx) -> i64) -> Vec<InstanceIdx> {
    let keyed: Vec<(InstanceIdx, i64)> = set.iter().map(|&i| (i, key(i))).collect();
    let Some(min) = keyed.iter().map(|(_, k)| *k).min() else {
        return Vec::new();
    };
    keyed.into_iter().filter(|(_, k)| *k == min).map(|(i, _)| i).collect()
}

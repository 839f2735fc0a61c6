//! The validator: walks the spanned tree of one policy document and reports every error with its position.
//!
//! Each field is checked on its own, so one bad field never hides the next. Key names come from the raw serde types
//! ([`raw::fields`]), so a key the validator accepts is a key serde accepts. Value rules (ranges, globs, durations,
//! `target` below `trigger`, …) are stated here once; `docs/policy.md` documents each for users.

use std::collections::HashMap;

use super::duration;
use super::raw::{self, RawBudgets, RawCooldown, RawExclude, RawMetadata, RawPolicy, RawSpec, RawThreshold};
use super::spanned::{Kind, Node, Pos, Scalar};
use super::types::{defaults, ActionKind, Metric, Mode, Pattern};

pub const API_VERSION: &str = "ecs-rebalancer/v1";
pub const KIND: &str = "BalancePolicy";

/// What cross-file checks need from a document that passed or failed validation.
#[derive(Debug, Default)]
pub struct Summary {
    pub name: Option<(Pos, String)>,
    pub clusters: Vec<(Pos, String)>,
}

/// Checks one document; appends `(position, message)` for every error found.
pub fn check(doc: &Node, errors: &mut Vec<(Pos, String)>) -> Summary {
    let mut c = Checker { errors };
    c.tags(doc, "policy");
    let mut summary = Summary::default();
    let Some(top) = c.mapping(
        doc,
        "policy",
        raw::fields::<RawPolicy>(),
        &["apiVersion", "kind", "metadata", "spec"],
    ) else {
        return summary;
    };
    if let Some(n) = top.get("apiVersion") {
        c.exact(n, "apiVersion", API_VERSION, "this build reads");
    }
    if let Some(n) = top.get("kind") {
        c.exact(n, "kind", KIND, "expected");
    }
    if let Some(n) = top.get("metadata") {
        summary.name = c.metadata(n);
    }
    if let Some(n) = top.get("spec") {
        summary.clusters = c.spec(n);
    }
    summary
}

/// Whether a metadata.name is acceptable: a lowercase DNS label, as Kubernetes names are.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Parses `"25%"` into 25; the percentage must be 1..=100.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let number = text
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("expected a whole number of tasks or a percentage like \"25%\", found {text:?}"))?;
    if (1..=100).contains(&number) {
        Ok(number)
    } else {
        Err(format!("percentage {number}% is outside 1%..100%"))
    }
}

fn is_radix_prefixed(node: &Node) -> bool {
    matches!(&node.kind, Kind::Scalar { text, .. }
        if ["0x", "0o", "0b"].iter().any(|p| text.trim_start_matches(['-', '+']).starts_with(p)))
}

/// The closest known word within a small edit distance, for "did you mean".
pub fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&word.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn one_of(word: &str, known: &[&str]) -> String {
    match suggest(word, known) {
        Some(s) => format!("did you mean {s:?}?"),
        None => format!("expected one of: {}", known.join(", ")),
    }
}

/// The known keys of a mapping, looked up by name.
struct Fields<'n> {
    values: HashMap<&'n str, &'n Node>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.values.get(key).copied()
    }
}

struct Checker<'e> {
    errors: &'e mut Vec<(Pos, String)>,
}

impl Checker<'_> {
    fn error(&mut self, pos: Pos, message: String) {
        self.errors.push((pos, message));
    }

    /// Reports every tagged node under `node`. A tag changes what a value is (`!!str 5` is the string "5", `!Ref x`
    /// is something else again) while the checks below read values untagged, as YAML's core schema resolves them:
    /// `perService: !!str 5` passed them as a count and then failed in serde's reading as a percentage, placed at
    /// the document's first line. A policy has no use for tags, so each is refused where it is written, as aliases
    /// are.
    fn tags(&mut self, node: &Node, path: &str) {
        if let Some(tag) = &node.tag {
            self.error(
                node.pos,
                format!(
                    "{path}: tags such as {tag} are not supported in policies; write the value without it (quoted, \
                     if it is a string)"
                ),
            );
        }
        match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.tags(item, &format!("{path}[{i}]"));
                }
            }
            Kind::Map(pairs) => {
                for (key, value) in pairs {
                    self.tags(key, path);
                    let name = match &key.kind {
                        Kind::Scalar { text, .. } => text.as_str(),
                        _ => "?",
                    };
                    if path == "policy" {
                        self.tags(value, name);
                    } else {
                        self.tags(value, &format!("{path}.{name}"));
                    }
                }
            }
            Kind::Scalar { .. } | Kind::Alias => {}
        }
    }

    /// Checks that `node` is a mapping with only `known` keys, each once, and every `required` one present.
    fn mapping<'n>(&mut self, node: &'n Node, path: &str, known: &[&str], required: &[&str]) -> Option<Fields<'n>> {
        let Kind::Map(pairs) = &node.kind else {
            self.error(
                node.pos,
                format!("{path}: expected a mapping, found {}", node.describe()),
            );
            return None;
        };
        let mut values = HashMap::new();
        let mut first_seen: HashMap<&str, Pos> = HashMap::new();
        // A misspelt required key is one mistake: reported once, as unknown with a suggestion.
        let mut suggested = Vec::new();
        for (key, value) in pairs {
            let Some(Scalar::Str(name)) = key.scalar() else {
                self.error(
                    key.pos,
                    format!("{path}: keys must be strings, found {}", key.describe()),
                );
                continue;
            };
            if let Some(first) = first_seen.insert(name, key.pos) {
                self.error(
                    key.pos,
                    format!("{path}: duplicate key {name:?} (first at line {})", first.line),
                );
                continue;
            }
            if known.contains(&name) {
                values.insert(name, value);
            } else {
                suggested.extend(suggest(name, known));
                self.error(
                    key.pos,
                    format!("{path}: unknown key {name:?}; {}", one_of(name, known)),
                );
            }
        }
        for key in required {
            if !first_seen.contains_key(key) && !suggested.contains(key) {
                self.error(node.pos, format!("{path}: missing required key {key:?}"));
            }
        }
        Some(Fields { values })
    }

    fn string<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        match node.scalar() {
            Some(Scalar::Str(s)) => Some(s),
            _ => {
                self.error(
                    node.pos,
                    format!("{path}: expected a string, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // thresholds are small numbers
        let value = match node.scalar() {
            // yaml_serde reads hex and octal integers but will not widen them to a float.
            Some(Scalar::Int(i)) if !is_radix_prefixed(node) => i as f64,
            Some(Scalar::Float(f)) => f,
            _ => {
                self.error(
                    node.pos,
                    format!("{path}: expected a number, found {}", node.describe()),
                );
                return None;
            }
        };
        if value.is_finite() {
            Some(value)
        } else {
            self.error(node.pos, format!("{path}: expected a finite number, found {value}"));
            None
        }
    }

    fn count(&mut self, node: &Node, path: &str, min: u32) -> Option<u32> {
        let Some(Scalar::Int(i)) = node.scalar() else {
            self.error(
                node.pos,
                format!("{path}: expected a whole number, found {}", node.describe()),
            );
            return None;
        };
        match u32::try_from(i) {
            Ok(n) if n >= min => Some(n),
            _ => {
                self.error(node.pos, format!("{path}: must be at least {min}, found {i}"));
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<std::time::Duration> {
        let found = match node.scalar() {
            Some(Scalar::Str(s)) => s.to_owned(),
            Some(Scalar::Int(i)) => {
                self.error(
                    node.pos,
                    format!("{path}: {i} has no unit; write a duration like {i}s, {i}m or {i}h"),
                );
                return None;
            }
            _ => {
                self.error(
                    node.pos,
                    format!("{path}: expected a duration like 90s, found {}", node.describe()),
                );
                return None;
            }
        };
        duration::parse(&found)
            .map_err(|e| self.error(node.pos, format!("{path}: {e}")))
            .ok()
    }

    fn string_list<'n>(&mut self, node: &'n Node, path: &str) -> Vec<(Pos, &'n str)> {
        let Kind::Seq(items) = &node.kind else {
            self.error(node.pos, format!("{path}: expected a list, found {}", node.describe()));
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(item, &format!("{path}[{i}]")).map(|s| (item.pos, s)))
            .collect()
    }

    /// A list of globs; every element compiled, duplicates reported. Returns the usable ones.
    fn globs<'n>(&mut self, node: &'n Node, path: &str) -> Vec<(Pos, &'n str)> {
        let items = self.string_list(node, path);
        let mut seen = HashMap::new();
        let mut usable = Vec::with_capacity(items.len());
        for (pos, text) in items {
            if let Some(first) = seen.insert(text, pos) {
                self.error(
                    pos,
                    format!("{path}: {text:?} is listed twice (first at line {})", first.line),
                );
            } else if self.glob(pos, path, text) {
                usable.push((pos, text));
            }
        }
        usable
    }

    /// Reports an empty or malformed glob; true when the glob is usable.
    fn glob(&mut self, pos: Pos, path: &str, text: &str) -> bool {
        if text.is_empty() {
            self.error(pos, format!("{path}: empty pattern"));
            return false;
        }
        match Pattern::new(text) {
            Ok(_) => true,
            Err(e) => {
                self.error(pos, format!("{path}: invalid glob {text:?}: {e}"));
                false
            }
        }
    }

    /// A mapping of string keys to glob values (`serviceTags`, `instanceAttributes`).
    fn glob_map(&mut self, node: &Node, path: &str) {
        let Kind::Map(pairs) = &node.kind else {
            self.error(
                node.pos,
                format!("{path}: expected a mapping, found {}", node.describe()),
            );
            return;
        };
        let mut seen = HashMap::new();
        for (key, value) in pairs {
            let Some(name) = self.string(key, &format!("{path} key")) else {
                continue;
            };
            if name.is_empty() {
                self.error(key.pos, format!("{path}: empty key"));
            }
            if let Some(first) = seen.insert(name, key.pos) {
                self.error(
                    key.pos,
                    format!("{path}: duplicate key {name:?} (first at line {})", first.line),
                );
            }
            if let Some(text) = self.string(value, &format!("{path}.{name}")) {
                self.glob(value.pos, &format!("{path}.{name}"), text);
            }
        }
    }

    /// One of a closed set of names (metric, action, mode).
    fn name<T>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        names: &[&str],
        parse: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.string(node, path)?;
        let value = parse(text);
        if value.is_none() {
            let hint = suggest(text, names)
                .map(|s| format!("did you mean {s:?}? "))
                .unwrap_or_default();
            self.error(
                node.pos,
                format!(
                    "{path}: unknown {what} {text:?}; {hint}valid {what}s: {}",
                    names.join(", ")
                ),
            );
        }
        value
    }

    fn exact(&mut self, node: &Node, path: &str, expected: &str, wording: &str) {
        if let Some(found) = self.string(node, path) {
            if found != expected {
                self.error(
                    node.pos,
                    format!("{path}: unsupported {path} {found:?}; {wording} {expected:?}"),
                );
            }
        }
    }

    fn metadata(&mut self, node: &Node) -> Option<(Pos, String)> {
        let m = self.mapping(node, "metadata", raw::fields::<RawMetadata>(), &["name"])?;
        if let Some(n) = m.get("description") {
            self.string(n, "metadata.description");
        }
        let n = m.get("name")?;
        let name = self.string(n, "metadata.name")?;
        if !valid_name(name) {
            self.error(
                n.pos,
                format!(
                    "metadata.name: {name:?} is not a valid name; use 1 to 63 lowercase letters, digits and '-', \
                     starting and ending with a letter or digit"
                ),
            );
        }
        Some((n.pos, name.to_owned()))
    }

    fn spec(&mut self, node: &Node) -> Vec<(Pos, String)> {
        let Some(s) = self.mapping(
            node,
            "spec",
            raw::fields::<RawSpec>(),
            &["clusters", "metric", "threshold"],
        ) else {
            return Vec::new();
        };
        let mut clusters = Vec::new();
        if let Some(n) = s.get("clusters") {
            clusters = self.globs(n, "spec.clusters");
            if matches!(&n.kind, Kind::Seq(items) if items.is_empty()) {
                self.error(n.pos, "spec.clusters: list at least one cluster name or glob".into());
            }
        }
        if let Some(n) = s.get("metric") {
            self.name(n, "spec.metric", "metric", Metric::NAMES, Metric::parse);
        }
        if let Some(n) = s.get("threshold") {
            self.threshold(n);
        }
        let actions = s.get("actions").map(|n| self.actions(n)).unwrap_or_default();
        if let Some(n) = s.get("mode") {
            self.name(n, "spec.mode", "mode", Mode::NAMES, Mode::parse);
        }
        if let Some(n) = s.get("interval") {
            if let Some(d) = self.duration(n, "spec.interval") {
                if d < defaults::MIN_INTERVAL {
                    self.error(
                        n.pos,
                        format!(
                            "spec.interval: {} is below the minimum of {}",
                            duration::format(d),
                            duration::format(defaults::MIN_INTERVAL)
                        ),
                    );
                }
            }
        }
        if let Some(n) = s.get("exclude") {
            self.exclude(n);
        }
        if let Some(n) = s.get("budgets") {
            self.budgets(n, actions.contains(&ActionKind::DrainInstances));
        }
        if let Some(n) = s.get("cooldown") {
            if let Some(c) = self.mapping(n, "spec.cooldown", raw::fields::<RawCooldown>(), &[]) {
                for key in raw::fields::<RawCooldown>() {
                    if let Some(v) = c.get(key) {
                        self.duration(v, &format!("spec.cooldown.{key}"));
                    }
                }
            }
        }
        if let Some(n) = s.get("utilization") {
            self.utilization(n);
        }
        clusters.into_iter().map(|(p, c)| (p, c.to_owned())).collect()
    }

    fn threshold(&mut self, node: &Node) {
        let Some(t) = self.mapping(
            node,
            "spec.threshold",
            raw::fields::<RawThreshold>(),
            &["trigger", "target"],
        ) else {
            return;
        };
        let trigger = t.get("trigger").and_then(|n| {
            let v = self.number(n, "spec.threshold.trigger")?;
            if v <= 0.0 {
                self.error(n.pos, format!("spec.threshold.trigger: must be above 0, found {v}"));
                return None;
            }
            Some(v)
        });
        let target = t.get("target").and_then(|n| {
            let v = self.number(n, "spec.threshold.target")?;
            if v < 0.0 {
                self.error(n.pos, format!("spec.threshold.target: must be 0 or more, found {v}"));
                return None;
            }
            Some((n.pos, v))
        });
        if let (Some(trigger), Some((pos, target))) = (trigger, target) {
            if target >= trigger {
                self.error(
                    pos,
                    format!(
                        "spec.threshold.target ({target}) must be below spec.threshold.trigger ({trigger}), \
                         or the controller would never stop"
                    ),
                );
            }
        }
    }

    fn actions(&mut self, node: &Node) -> Vec<ActionKind> {
        let Kind::Seq(items) = &node.kind else {
            self.error(
                node.pos,
                format!("spec.actions: expected a list, found {}", node.describe()),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                node.pos,
                format!(
                    "spec.actions: list at least one action ({}); use mode: dry-run to act on nothing",
                    ActionKind::NAMES.join(", ")
                ),
            );
        }
        let mut out: Vec<ActionKind> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("spec.actions[{i}]");
            if let Some(a) = self.name(item, &path, "action", ActionKind::NAMES, ActionKind::parse) {
                if out.contains(&a) {
                    self.error(item.pos, format!("{path}: {a} is listed twice"));
                }
                out.push(a);
            }
        }
        out
    }

    fn exclude(&mut self, node: &Node) {
        let Some(e) = self.mapping(node, "spec.exclude", raw::fields::<RawExclude>(), &[]) else {
            return;
        };
        if let Some(n) = e.get("services") {
            self.globs(n, "spec.exclude.services");
        }
        if let Some(n) = e.get("serviceTags") {
            self.glob_map(n, "spec.exclude.serviceTags");
        }
        if let Some(n) = e.get("instanceAttributes") {
            self.glob_map(n, "spec.exclude.instanceAttributes");
        }
    }

    fn budgets(&mut self, node: &Node, drains_allowed: bool) {
        let Some(b) = self.mapping(node, "spec.budgets", raw::fields::<RawBudgets>(), &[]) else {
            return;
        };
        // `perCycle` is the old name of `maxUnavailable`: still read, never both.
        let unavailable = b.get("maxUnavailable");
        if let Some(n) = unavailable {
            self.count(n, "spec.budgets.maxUnavailable", 1);
        }
        if let Some(n) = b.get("perCycle") {
            if unavailable.is_some() {
                self.error(
                    n.pos,
                    "spec.budgets.perCycle is the old name of maxUnavailable; keep only maxUnavailable".into(),
                );
            } else {
                self.count(n, "spec.budgets.perCycle", 1);
            }
        }
        if let Some(n) = b.get("perHour") {
            self.count(n, "spec.budgets.perHour", 1);
        }
        if let Some(n) = b.get("perService") {
            match n.scalar() {
                Some(Scalar::Int(_)) => {
                    self.count(n, "spec.budgets.perService", 1);
                }
                Some(Scalar::Str(s)) => {
                    if let Err(e) = parse_percent(s) {
                        self.error(n.pos, format!("spec.budgets.perService: {e}"));
                    }
                }
                _ => self.error(
                    n.pos,
                    format!(
                        "spec.budgets.perService: expected a whole number of tasks or a percentage like \"25%\", \
                         found {}",
                        n.describe()
                    ),
                ),
            }
        }
        if let Some(n) = b.get("concurrentDrains") {
            if let Some(0) = self.count(n, "spec.budgets.concurrentDrains", 0) {
                if drains_allowed {
                    self.error(
                        n.pos,
                        "spec.budgets.concurrentDrains: is 0 but spec.actions allows drain-instances; \
                         raise it or remove the action"
                            .into(),
                    );
                }
            }
        }
    }

    fn utilization(&mut self, node: &Node) {
        let Some(u) = self.mapping(node, "spec.utilization", raw::fields::<raw::RawUtilization>(), &[]) else {
            return;
        };
        if let Some(n) = u.get("maxUnknownShare") {
            if let Some(v) = self.number(n, "spec.utilization.maxUnknownShare") {
                if !(0.0..=1.0).contains(&v) {
                    self.error(
                        n.pos,
                        format!("spec.utilization.maxUnknownShare: must be between 0 and 1, found {v}"),
                    );
                }
            }
        }
        for key in ["window", "staleAfter"] {
            if let Some(n) = u.get(key) {
                if self
                    .duration(n, &format!("spec.utilization.{key}"))
                    .is_some_and(|d| d.is_zero())
                {
                    self.error(n.pos, format!("spec.utilization.{key}: must be longer than 0s"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_but_not_unrelated_words() {
        assert_eq!(suggest("metrik", &["metric", "threshold"]), Some("metric"));
        assert_eq!(suggest("treshold", &["metric", "threshold"]), Some("threshold"));
        assert_eq!(suggest("banana", &["metric", "threshold"]), None);
        assert_eq!(suggest("cpu-reserved", Metric::NAMES), Some("cpu-unreserved"));
    }

    #[test]
    fn a_tag_is_refused_where_it_is_written_with_the_path_of_its_value() {
        let doc = super::super::spanned::parse(
            "spec:\n  budgets: {perService: !!str 5}\n  clusters: !custom [a, !!str b]\n  !!str metric: x\n",
        )
        .unwrap()
        .remove(0);
        let mut errors = Vec::new();
        Checker { errors: &mut errors }.tags(&doc, "policy");
        let shown: Vec<String> = errors
            .iter()
            .map(|(p, m)| format!("{}:{}: {m}", p.line, p.col))
            .collect();
        let tail = "are not supported in policies; write the value without it (quoted, if it is a string)";
        assert_eq!(
            shown,
            [
                format!("2:25: spec.budgets.perService: tags such as !!str {tail}"),
                format!("3:13: spec.clusters: tags such as !custom {tail}"),
                format!("3:25: spec.clusters[1]: tags such as !!str {tail}"),
                format!("4:3: spec: tags such as !!str {tail}"),
            ]
        );
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(valid_name("web-fleet-2"));
        assert!(!valid_name("Web"));
        assert!(!valid_name("-web"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(64)));
    }

    #[test]
    fn percentages_are_whole_and_in_range() {
        assert_eq!(parse_percent("25%"), Ok(25));
        assert!(parse_percent("0%").is_err());
        assert!(parse_percent("150%").is_err());
        assert!(parse_percent("25").is_err());
    }
}

//! The policy language `ecs-rebalancer/v1` (user documentation: `docs/policy.md`).
//!
//! A file goes raw → validated → defaulted:
//! 1. [`spanned`] parses the YAML into nodes that know their line and column.
//! 2. [`validate`] walks those nodes and reports **every** error as `file:line:col: message`.
//! 3. [`raw`] deserialises the same text with `yaml_serde` under `deny_unknown_fields`: the authority on shape.
//!    If it still objects after the validator passed, its error is reported (never a half-loaded policy).
//! 4. [`convert`] fills the defaults into a typed [`Policy`].
//!
//! Across files, [`load_paths`] adds the checks no single file can make: two policies claiming the same cluster, or
//! sharing a name.

pub mod convert;
pub mod duration;
pub mod raw;
pub mod spanned;
pub mod types;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use types::{
    ActionKind, Budgets, Cooldown, CountOrPercent, Exclude, Metric, Mode, Pattern, Policy, Threshold,
    UtilizationSettings,
};

use spanned::Pos;

/// Policy files larger than this are refused unread: a policy is a page of YAML.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One error, placed in a file (and at a line and column when it concerns the file's content).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file.display(), p.line, p.col, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every error found, in file and position order; printed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A policy together with where its name and clusters are written, for cross-file checks.
struct Loaded {
    policy: Option<Policy>,
    summary: validate::Summary,
    file: PathBuf,
}

/// Loads every policy document in one YAML text. `file` names the source in errors.
pub fn load_str(file: &Path, text: &str) -> Result<Vec<Policy>, Diagnostics> {
    let mut diagnostics = Vec::new();
    let loaded = load_documents(file, text, &mut diagnostics);
    finish(loaded, diagnostics)
}

/// Loads policies from files and folders (folders are searched recursively for `*.yaml` / `*.yml`, skipping hidden
/// entries), then checks that no two policies share a name or a cluster.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Policy>, Diagnostics> {
    let (files, diagnostics) = read_all(paths);
    load_texts(&files, diagnostics)
}

/// Every policy file under `paths`, read, and every error met finding or reading them.
fn read_all<P: AsRef<Path>>(paths: &[P]) -> (Vec<PolicyFile>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut found = Vec::new();
    for path in paths {
        collect_files(path.as_ref(), true, &mut found, &mut diagnostics);
    }
    let mut files = Vec::new();
    for file in found {
        match read_file(&file) {
            Ok(f) => files.push(f),
            Err(d) => diagnostics.push(d),
        }
    }
    (files, diagnostics)
}

/// One policy file's name and text, however it was read (from disk, or from a git tree).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyFile {
    /// What errors name: the path on disk, or the path inside the repository.
    pub path: PathBuf,
    pub text: String,
}

/// Loads the policies of files already read, with the same checks as [`load_paths`] (each file, then across files).
pub fn load_files(files: &[PolicyFile]) -> Result<Vec<Policy>, Diagnostics> {
    load_texts(files, Vec::new())
}

fn load_texts(files: &[PolicyFile], mut diagnostics: Vec<Diagnostic>) -> Result<Vec<Policy>, Diagnostics> {
    let mut loaded = Vec::new();
    for f in files {
        loaded.extend(load_documents(&f.path, &f.text, &mut diagnostics));
    }
    finish(loaded, diagnostics)
}

/// Reads a policy file as [`load_paths`] does: at most [`MAX_FILE_BYTES`], UTF-8.
fn read_file(file: &Path) -> Result<PolicyFile, Diagnostic> {
    let bytes = read_policy_file(file).map_err(|message| Diagnostic {
        file: file.to_owned(),
        pos: None,
        message,
    })?;
    Ok(PolicyFile {
        path: file.to_owned(),
        text: decode(file, bytes)?,
    })
}

/// A policy file's bytes as its text, however the file was read (from disk, or from a git tree). Bytes that are not
/// UTF-8 are an error placed at the first bad one, by line and by column in characters as every other error is, so
/// an editor can jump to it: an error about a file's content always has a position.
pub fn decode(file: &Path, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        // Valid up to `offset` by the error's own account.
        let before = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
        // Lines break where YAML breaks them: at `\r\n`, `\r` or `\n`.
        let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let breaks = before.matches(['\n', '\r']).count() - before.matches("\r\n").count();
        Diagnostic {
            file: file.to_owned(),
            pos: Some(Pos {
                line: breaks + 1,
                col: before[line_start..].chars().count() + 1,
            }),
            message: format!(
                "not UTF-8 text: byte 0x{:02X} (at offset {offset}) is not part of a UTF-8 character; save the file \
                 as UTF-8",
                bytes[offset]
            ),
        }
    })
}

/// The policy files under `path` as [`load_paths`] finds them (a file, or a folder's `*.yaml` / `*.yml` files,
/// recursively, skipping hidden entries), read; or every error found.
pub fn read_paths(path: &Path) -> Result<Vec<PolicyFile>, Diagnostics> {
    let (files, diagnostics) = read_all(&[path]);
    if diagnostics.is_empty() {
        Ok(files)
    } else {
        Err(Diagnostics(diagnostics))
    }
}

/// A file name [`load_paths`] reads in a folder: `*.yaml` or `*.yml`, not hidden.
pub fn is_policy_file_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

fn finish(loaded: Vec<Loaded>, mut diagnostics: Vec<Diagnostic>) -> Result<Vec<Policy>, Diagnostics> {
    cross_check(&loaded, &mut diagnostics);
    if diagnostics.is_empty() {
        Ok(loaded.into_iter().filter_map(|l| l.policy).collect())
    } else {
        diagnostics.sort();
        diagnostics.dedup();
        Err(Diagnostics(diagnostics))
    }
}

fn read_policy_file(file: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes is more than a policy file may hold ({MAX_FILE_BYTES})",
            meta.len()
        ));
    }
    std::fs::read(file).map_err(|e| format!("cannot read: {e}"))
}

fn collect_files(path: &Path, named: bool, files: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    let fail = |message: String, diagnostics: &mut Vec<Diagnostic>| {
        diagnostics.push(Diagnostic {
            file: path.to_owned(),
            pos: None,
            message,
        });
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return fail(format!("cannot read: {e}"), diagnostics),
    };
    if meta.is_file() {
        files.push(path.to_owned());
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => return fail(format!("cannot read folder: {e}"), diagnostics),
    };
    entries.sort();
    let before = files.len();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if entry.is_dir() {
            collect_files(&entry, false, files, diagnostics);
        } else if is_policy_file_name(name) {
            files.push(entry);
        }
    }
    if named && files.len() == before {
        fail("no *.yaml or *.yml policy files in this folder".into(), diagnostics);
    }
}

fn load_documents(file: &Path, text: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<Loaded> {
    let at = |pos: Pos, message: String| Diagnostic {
        file: file.to_owned(),
        pos: Some(pos),
        message,
    };
    let documents = match spanned::parse(text) {
        Ok(docs) => docs,
        Err(e) => {
            diagnostics.push(at(e.pos, format!("YAML syntax error: {}", e.message)));
            return Vec::new();
        }
    };
    if documents.is_empty() {
        diagnostics.push(at(Pos { line: 1, col: 1 }, "no policy document in this file".into()));
        return Vec::new();
    }
    let mut errors = Vec::new();
    let summaries: Vec<_> = documents.iter().map(|doc| validate::check(doc, &mut errors)).collect();
    let mut loaded: Vec<Loaded> = summaries
        .into_iter()
        .map(|summary| Loaded {
            policy: None,
            summary,
            file: file.to_owned(),
        })
        .collect();
    if !errors.is_empty() {
        diagnostics.extend(errors.into_iter().map(|(pos, message)| at(pos, message)));
        return loaded;
    }
    // The validator found nothing: the typed parse must agree, or its objection is the error.
    let raws = match raw::parse_documents(text) {
        Ok(raws) => raws,
        Err(e) => {
            let (line, col) = e.position.unwrap_or((1, 1));
            diagnostics.push(at(Pos { line, col }, e.message));
            return loaded;
        }
    };
    for ((raw, slot), doc) in raws.into_iter().zip(loaded.iter_mut()).zip(&documents) {
        match convert::to_policy(raw, file) {
            Ok(policy) => slot.policy = Some(policy),
            Err(message) => diagnostics.push(at(doc.pos, message)),
        }
    }
    loaded
}

/// A cluster is governed by at most one policy, and names are unique: both checked across every loaded document.
fn cross_check(loaded: &[Loaded], diagnostics: &mut Vec<Diagnostic>) {
    for (j, later) in loaded.iter().enumerate() {
        let earlier = &loaded[..j];
        if let Some((pos, name)) = &later.summary.name {
            if let Some(first) = earlier
                .iter()
                .find(|l| l.summary.name.as_ref().is_some_and(|(_, n)| n == name))
            {
                let (first_pos, _) = first
                    .summary
                    .name
                    .as_ref()
                    .map_or((Pos::default(), ""), |(p, n)| (*p, n));
                diagnostics.push(Diagnostic {
                    file: later.file.clone(),
                    pos: Some(*pos),
                    message: format!(
                        "metadata.name {name:?} is already used by the policy in {}:{}:{}",
                        first.file.display(),
                        first_pos.line,
                        first_pos.col
                    ),
                });
            }
        }
        for (pos, pattern) in &later.summary.clusters {
            let clash = earlier.iter().find_map(|l| {
                l.summary
                    .clusters
                    .iter()
                    .find(|(_, other)| patterns_overlap(pattern, other))
                    .map(|(p, other)| (l, *p, other))
            });
            if let Some((other, other_pos, other_pattern)) = clash {
                let other_name = other.summary.name.as_ref().map_or("?", |(_, n)| n.as_str());
                let how = if other_pattern == pattern {
                    format!("cluster {pattern:?}")
                } else {
                    format!("cluster pattern {pattern:?} overlaps {other_pattern:?}, which")
                };
                diagnostics.push(Diagnostic {
                    file: later.file.clone(),
                    pos: Some(*pos),
                    message: format!(
                        "{how} is already claimed by policy {other_name:?} in {}:{}:{}; a cluster is governed by one \
                         policy",
                        other.file.display(),
                        other_pos.line,
                        other_pos.col
                    ),
                });
            }
        }
    }
}

/// Whether two cluster patterns can match the same cluster name.
///
/// Exact for two literals and for a literal against a glob. For two globs it is a sound approximation that
/// catches the common cases (`prod-*` vs `prod-eu-*`, `*` vs anything): each glob is tried against the other's
/// text. Two globs that overlap only on names neither spells out (`a*` and `*b`) are not caught here; at run time a
/// cluster that two policies match is refused with an error naming both.
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let matches = |glob: &str, text: &str| Pattern::new(glob).is_ok_and(|p| p.is_match(text));
    matches(a, b) || matches(b, a)
}

/// Two or more loaded policies match the same cluster: the controller refuses to guess which one governs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster {cluster:?} is matched by more than one policy: {}", .policies.join(", "))]
pub struct AmbiguousPolicy {
    pub cluster: String,
    /// `name (file)` of each matching policy.
    pub policies: Vec<String>,
}

/// The one policy that governs `cluster`, `None` when no policy matches it.
pub fn policy_for_cluster<'p>(policies: &'p [Policy], cluster: &str) -> Result<Option<&'p Policy>, AmbiguousPolicy> {
    let matching: Vec<&Policy> = policies.iter().filter(|p| p.applies_to(cluster)).collect();
    match matching.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(AmbiguousPolicy {
            cluster: cluster.to_owned(),
            policies: many
                .iter()
                .map(|p| format!("{} ({})", p.name, p.source.display()))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the language has, each on its own line, so each value can be swapped out.
    const FULL: &str = "\
apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata:
  name: full
  description: every key
spec:
  clusters:
    - prod
  metric: count
  threshold:
    trigger: 0.2
    target: 0.1
  actions:
    - stop-tasks
  mode: enforce
  interval: 5m
  exclude:
    services:
      - batch-*
    serviceTags:
      team: data
    instanceAttributes:
      ecs.instance-type: g5.*
  budgets:
    maxUnavailable: 3
    perHour: 30
    perService: 25%
    concurrentDrains: 1
  cooldown:
    instance: 10m
    service: 10m
    newInstance: 5m
  utilization:
    maxUnknownShare: 0.2
    window: 5m
    staleAfter: 10m
";

    /// Values of every YAML type and a few near-misses.
    const ODD_VALUES: &[&str] = &[
        "5",
        "\"5\"",
        "-1",
        "0",
        "0.5",
        "1e3",
        ".inf",
        ".nan",
        "~",
        "true",
        "\"\"",
        "[a]",
        "[]",
        "{a: 1}",
        "{}",
        "10m",
        "\"25%\"",
        "abc",
        "'x'",
        "4294967296",
        "0x10",
    ];

    fn errors_of(text: &str) -> Option<Vec<(Pos, String)>> {
        let docs = spanned::parse(text).ok()?;
        let mut errors = Vec::new();
        for doc in &docs {
            validate::check(doc, &mut errors);
        }
        Some(errors)
    }

    /// The validator and the typed parse must agree on every single-value change to a valid policy: whatever
    /// serde rejects the validator reports (with a position), and whatever the validator passes serde and the
    /// defaulter accept. This is what lets the validator, not serde's first error, speak to users.
    #[test]
    fn the_validator_reports_everything_serde_rejects() {
        let lines: Vec<&str> = FULL.lines().collect();
        let mut cases = 0;
        let mut disagreements = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let Some((head, _)) = line
                .split_once(": ")
                .or_else(|| line.split_once("- ").map(|(h, _)| (h, "")))
            else {
                continue;
            };
            let sep = if line.trim_start().starts_with("- ") {
                "- "
            } else {
                ": "
            };
            for value in ODD_VALUES {
                let mut changed = lines.clone();
                let replaced = format!("{head}{sep}{value}");
                changed[i] = &replaced;
                let text = changed.join("\n");
                let Some(errors) = errors_of(&text) else { continue };
                cases += 1;
                let serde = raw::parse_documents(&text);
                if !errors.is_empty() {
                    // The validator's value rules reject more than serde does; that direction is expected.
                    continue;
                }
                match serde {
                    Err(e) => disagreements.push(format!("line {}: {replaced:?}: serde says {}", i + 1, e.message)),
                    Ok(raws) => {
                        for raw in raws {
                            if let Err(e) = convert::to_policy(raw, Path::new("t")) {
                                disagreements.push(format!("line {}: {replaced:?}: defaults say {e}", i + 1));
                            }
                        }
                    }
                }
            }
        }
        assert!(
            disagreements.is_empty(),
            "validator passed what serde rejects:\n{}",
            disagreements.join("\n")
        );
        assert!(cases > 400, "only {cases} cases ran");
    }

    #[test]
    fn the_full_policy_is_valid_and_round_trips_with_defaults_spelled_out() {
        let policies = load_str(Path::new("full.yaml"), FULL).unwrap();
        let written = raw::to_yaml(&convert::to_raw(&policies[0])).unwrap();
        let again = load_str(Path::new("full.yaml"), &written).unwrap();
        assert_eq!(policies, again);
    }

    /// Bytes that are not UTF-8 were refused with their offset alone ("p.yaml: not UTF-8 text (invalid byte at
    /// offset 41)"): the one content error without a line and column.
    #[test]
    fn a_file_that_is_not_utf8_is_refused_at_the_line_and_column_of_its_first_bad_byte() {
        let mut bytes = b"apiVersion: ecs-rebalancer/v1\r\nkind: Bal".to_vec();
        bytes.extend([0xC3, 0xA9, b'a', 0xFF, b'\n', 0xFE]);
        let e = decode(Path::new("p.yaml"), bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml:2:12: not UTF-8 text: byte 0xFF (at offset 43) is not part of a UTF-8 character; save the file as \
             UTF-8"
        );
        assert_eq!(decode(Path::new("p.yaml"), b"a\rb".to_vec()), Ok("a\rb".to_owned()));
    }

    #[test]
    fn the_old_per_cycle_budget_is_read_as_max_unavailable() {
        let old = FULL.replace("    maxUnavailable: 3", "    perCycle: 3");
        let policies = load_str(Path::new("old.yaml"), &old).unwrap();
        assert_eq!(policies[0].budgets.max_unavailable, 3);
        let both = FULL.replace("    maxUnavailable: 3", "    maxUnavailable: 3\n    perCycle: 3");
        let e = load_str(Path::new("both.yaml"), &both).unwrap_err().to_string();
        assert!(
            e.contains("both.yaml:26:15: spec.budgets.perCycle is the old name of maxUnavailable"),
            "{e}"
        );
    }

    #[test]
    fn a_renamed_key_is_reported_at_the_key_with_a_suggestion() {
        let text = FULL.replace("  metric: count", "  metrik: count");
        let e = load_str(Path::new("p.yaml"), &text).unwrap_err().to_string();
        assert!(
            e.contains("p.yaml:9:3: spec: unknown key \"metrik\"; did you mean \"metric\"?"),
            "{e}"
        );
        assert!(!e.contains("missing required key"), "a typo is one error, not two: {e}");
        let e = load_str(Path::new("p.yaml"), &FULL.replace("  metric: count", "  colour: blue")).unwrap_err();
        assert!(
            e.to_string()
                .contains("p.yaml:7:3: spec: missing required key \"metric\""),
            "{e}"
        );
    }
}

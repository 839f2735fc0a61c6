//! No input makes a loader panic: arbitrary bytes, arbitrary YAML, and near-miss policies all end in `Ok` or in
//! errors that point inside the file.

use std::path::Path;

use proptest::prelude::*;

use ecs_rebalancer::model::Snapshot;
use ecs_rebalancer::policy::{self, Policy};

const VALID: &str = "\
apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata:
  name: web
spec:
  clusters: [\"prod-*\"]
  metric: cpu-unreserved
  threshold: {trigger: 0.3, target: 0.1}
  actions: [stop-tasks, drain-instances]
  mode: enforce
  interval: 90s
  exclude: {services: [batch-*], serviceTags: {a: b}, instanceAttributes: {ecs.instance-type: g5.*}}
  budgets: {perCycle: 2, perHour: 10, perService: 25%, concurrentDrains: 1}
  cooldown: {instance: 10m, service: 1h, newInstance: 5m}
  utilization: {maxUnknownShare: 0.1, window: 5m, staleAfter: 10m}
";

/// Loads and checks the shape of the outcome: errors are placed within the text.
fn load_checked(text: &str) -> Result<(), TestCaseError> {
    placed_within(text, &policy::load_str(Path::new("p.yaml"), text))
}

/// Every error of a load of `text` placed within the text.
fn placed_within(text: &str, loaded: &Result<Vec<Policy>, policy::Diagnostics>) -> Result<(), TestCaseError> {
    match loaded {
        Ok(_) => Ok(()),
        Err(d) => {
            prop_assert!(!d.0.is_empty(), "an error without a diagnostic");
            // YAML breaks lines at CR as well as LF; the position may be just past the last line.
            let lines = text.matches(['\n', '\r']).count() + 2;
            for diag in &d.0 {
                let pos = diag.pos.expect("content errors have a position");
                prop_assert!(
                    pos.line >= 1 && pos.line <= lines,
                    "{diag} is outside a {lines}-line text"
                );
                prop_assert!(pos.col >= 1, "{diag}");
                prop_assert!(diag.to_string().starts_with("p.yaml:"), "{diag}");
            }
            Ok(())
        }
    }
}

/// Arbitrary YAML values, rendered in block or flow style by yaml_serde's own emitter would hide the odd corners,
/// so they are rendered by hand: keys from the policy vocabulary and noise, scalars of every type.
fn yaml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("~".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[a-z0-9%*.\\-]{0,12}",
        "\"[^\"\\\\]{0,10}\"",
        Just("10m".to_owned()),
        Just("&a x".to_owned()),
        Just("*a".to_owned()),
    ];
    let key = prop_oneof![
        prop::sample::select(vec![
            "apiVersion",
            "kind",
            "metadata",
            "name",
            "spec",
            "clusters",
            "metric",
            "threshold",
            "trigger",
            "target",
            "actions",
            "mode",
            "interval",
            "exclude",
            "budgets",
            "perService",
            "cooldown",
            "utilization",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z]{1,8}",
    ];
    scalar.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                let body: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_policy_loader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_checked(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_yaml_never_panics_the_policy_loader(doc in yaml_value()) {
        load_checked(&doc)?;
        load_checked(&format!("apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {{name: x}}\nspec: {doc}\n"))?;
    }

    #[test]
    fn byte_edits_of_a_valid_policy_never_panic_the_loader(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = VALID.as_bytes().to_vec();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        load_checked(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_snapshot_loader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Snapshot::from_slice(Path::new("s.json"), &bytes);
    }
}

/// The fixture snapshot as JSON, and every path into it (object keys and array positions).
fn fixture() -> (serde_json::Value, Vec<Vec<serde_json::Value>>) {
    fn walk(v: &serde_json::Value, at: &mut Vec<serde_json::Value>, all: &mut Vec<Vec<serde_json::Value>>) {
        all.push(at.clone());
        match v {
            serde_json::Value::Object(m) => m.iter().for_each(|(k, c)| {
                at.push(k.clone().into());
                walk(c, at, all);
                at.pop();
            }),
            serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
                at.push(i.into());
                walk(c, at, all);
                at.pop();
            }),
            _ => {}
        }
    }
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/snapshot-hot.json")).unwrap();
    let root: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut all = Vec::new();
    walk(&root, &mut Vec::new(), &mut all);
    (root, all)
}

/// One edit at `path`: removed, replaced by `with`, or (in an array) repeated.
fn edit(root: &mut serde_json::Value, path: &[serde_json::Value], how: u8, with: serde_json::Value) {
    let Some((last, parent)) = path.split_last() else {
        *root = with;
        return;
    };
    let mut node = root;
    for step in parent {
        let next = match step {
            serde_json::Value::String(k) => node.get_mut(k.as_str()),
            _ => node.get_mut(step.as_u64().unwrap() as usize),
        };
        // An earlier edit removed or retyped what this path went through.
        let Some(next) = next else { return };
        node = next;
    }
    match (node, last) {
        (serde_json::Value::Object(m), serde_json::Value::String(k)) if how == 0 => {
            m.remove(k);
        }
        (serde_json::Value::Array(a), serde_json::Value::Number(i)) if (i.as_u64().unwrap() as usize) < a.len() => {
            let i = i.as_u64().unwrap() as usize;
            match how {
                0 => drop(a.remove(i)),
                1 => a.insert(i, a[i].clone()),
                _ => a[i] = with,
            }
        }
        (serde_json::Value::Object(m), serde_json::Value::String(k)) => {
            m.insert(k.clone(), with);
        }
        _ => {}
    }
}

fn json_scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[a-zA-Z0-9:/._-]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Edits of a valid snapshot (a member removed, retyped or repeated, anywhere) end in a typed error when it is
    /// loaded or indexed, or in a cluster the planner plans without panicking.
    #[test]
    fn edits_of_a_valid_snapshot_are_refused_or_planned_never_a_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, json_scalar()), 1..4),
    ) {
        let (mut root, paths) = fixture();
        for (at, how, with) in edits {
            let path = at.get(&paths).clone();
            edit(&mut root, &path, how, with);
        }
        let bytes = serde_json::to_vec(&root).unwrap();
        let Ok(snapshot) = Snapshot::from_slice(Path::new("s.json"), &bytes) else {
            return Ok(());
        };
        let Ok(cluster) = ecs_rebalancer::model::Cluster::new(snapshot) else {
            return Ok(());
        };
        let policy = policy::load_str(Path::new("p.yaml"), VALID).unwrap().remove(0);
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().to_utc();
        let _ = ecs_rebalancer::plan::plan(
            &cluster,
            &policy,
            &ecs_rebalancer::plan::LedgerView::default(),
            now,
            ecs_rebalancer::plan::Episode::default(),
        );
    }
}

/// Nesting 50,000 deep, and a scalar of 100,000 digits: a positioned error or a policy, never a stack overflow.
#[test]
fn deep_nesting_and_huge_scalars_end_in_a_positioned_error_or_a_policy() {
    let deep = "[".repeat(50_000) + &"]".repeat(50_000);
    let nested = VALID.replace("[\"prod-*\"]", &deep);
    let e = policy::load_str(Path::new("p.yaml"), &nested).unwrap_err();
    assert!(
        e.to_string().contains("p.yaml:6:") && e.to_string().contains("recursion limit"),
        "{e}"
    );
    let huge = VALID.replace("trigger: 0.3", &format!("trigger: 0.3{}", "1".repeat(100_000)));
    let loaded = policy::load_str(Path::new("p.yaml"), &huge).unwrap().remove(0);
    assert!((loaded.threshold.trigger - 0.3111).abs() < 1e-3);
    let json = format!("{{\"cluster\": {deep}}}");
    let e = Snapshot::from_slice(Path::new("s.json"), json.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("recursion limit"), "{e}");
}

#[test]
fn the_base_policy_of_these_properties_is_valid() {
    policy::load_str(Path::new("p.yaml"), VALID).unwrap();
}

/// The example policies users copy from: the mutations below start from what people really write (comments, flow
/// lists, block mappings, quoted globs), not from a document made up for the test.
const EXAMPLES: [(&str, &str); 3] = [
    ("cpu-mixed-fleet.yaml", include_str!("../policies/cpu-mixed-fleet.yaml")),
    (
        "production-cautious.yaml",
        include_str!("../policies/production-cautious.yaml"),
    ),
    ("spread-by-count.yaml", include_str!("../policies/spread-by-count.yaml")),
];

/// Every key a policy may hold, a few near-misses and a few keys of no policy: what a rename or an insertion writes.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "description",
    "spec",
    "clusters",
    "metric",
    "threshold",
    "trigger",
    "target",
    "actions",
    "mode",
    "interval",
    "exclude",
    "services",
    "serviceTags",
    "instanceAttributes",
    "budgets",
    "maxUnavailable",
    "perCycle",
    "perHour",
    "perService",
    "concurrentDrains",
    "cooldown",
    "instance",
    "service",
    "newInstance",
    "utilization",
    "maxUnknownShare",
    "window",
    "staleAfter",
    "metrik",
    "Trigger",
    "per_hour",
    "\"spec\"",
    "'mode'",
    "? mode",
    "<<",
    "~",
    "1",
    "[a]",
];

/// Values of every YAML type and the near-misses a hand edit makes: numbers at the bounds of the fields' integer
/// types, numbers YAML 1.1 read differently from 1.2, tags, anchors and aliases, quoted and block scalars.
const VALUES: &[&str] = &[
    "5",
    "0",
    "-1",
    "+1",
    "-0",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "99999999999999999999999",
    "0.5",
    "5.",
    ".5",
    "1e3",
    "1.0e+3",
    "1e400",
    "-1e-400",
    ".inf",
    "-.inf",
    ".nan",
    "NaN",
    "0x10",
    "-0x10",
    "0x",
    "0x+5",
    "0x-5",
    "0o17",
    "0o-7",
    "0b1",
    "0b101",
    "1_000",
    "010",
    "-010",
    "+010",
    "00",
    "010.5",
    "~",
    "null",
    "true",
    "yes",
    "off",
    "\"\"",
    "''",
    "\"5\"",
    "'25%'",
    "25%",
    "100%",
    "0%",
    "101%",
    "\"4294967296%\"",
    "10m",
    "\"10m\"",
    "0s",
    "1h30m",
    "9s",
    "10s",
    "250ms",
    "18446744073709551615ms",
    "18446744073709551616s",
    "213503982334601d",
    "1.5h",
    "-5s",
    "5 m",
    "[a]",
    "[]",
    "[stop-tasks, stop-tasks]",
    "[drain-instances]",
    "{a: 1}",
    "{}",
    "{a: 1, a: 2}",
    "prod-*",
    "\"[\"",
    "\"{a,b\"",
    "\"\\t\"",
    "\"\\u0000\"",
    "!!str 5",
    "!!int 5",
    "!!int \"5\"",
    "!!float 1",
    "!!str 0.3",
    "!!bool true",
    "!!null ~",
    "!!binary aGk=",
    "!custom x",
    "!<tag:yaml.org,2002:str> x",
    "&anchor 5",
    "*anchor",
    "|\n  block",
    ">-\n  folded",
    "- item",
    "key: value",
    "#",
    "enforce",
    "dry-run",
    "count",
    "cpu-available",
];

/// One edit of a policy's lines, as a person (or a merge) makes them.
#[derive(Debug, Clone)]
enum Mutation {
    RenameKey(prop::sample::Index, &'static str),
    Delete(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Retype(prop::sample::Index, &'static str),
    SwapValues(prop::sample::Index, prop::sample::Index),
    InsertKey(prop::sample::Index, usize, &'static str, &'static str),
    Indent(prop::sample::Index, i8),
    Tab(prop::sample::Index),
    DocumentSeparator(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    let key = || prop::sample::select(KEYS);
    let value = || prop::sample::select(VALUES);
    prop_oneof![
        1 => (index(), key()).prop_map(|(i, k)| Mutation::RenameKey(i, k)),
        1 => index().prop_map(Mutation::Delete),
        1 => index().prop_map(Mutation::Duplicate),
        3 => (index(), value()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        1 => (index(), index()).prop_map(|(a, b)| Mutation::SwapValues(a, b)),
        1 => (index(), 0usize..4, key(), value()).prop_map(|(i, d, k, v)| Mutation::InsertKey(i, d, k, v)),
        1 => (index(), -4i8..=4).prop_map(|(i, d)| Mutation::Indent(i, d)),
        1 => index().prop_map(Mutation::Tab),
        1 => index().prop_map(Mutation::DocumentSeparator),
    ]
}

/// A line's indentation, its key (after any `- `) and its value: `("  ", "trigger", "0.30")`. Lines without a key
/// (comments, list items, document markers) have none.
fn split_line(line: &str) -> (&str, Option<(&str, &str)>) {
    let body = line.trim_start_matches(' ');
    let indent = &line[..line.len() - body.len()];
    let body = body.strip_prefix("- ").unwrap_or(body);
    if body.starts_with('#') {
        return (indent, None);
    }
    match body.split_once(':') {
        Some((key, value)) => (indent, Some((key, value.trim_start()))),
        None => (indent, None),
    }
}

/// Applies one mutation to the lines of a policy.
fn mutate(lines: &mut Vec<String>, m: &Mutation) {
    if lines.is_empty() {
        lines.push(String::new());
    }
    let at = |i: &prop::sample::Index, lines: &Vec<String>| i.index(lines.len());
    // The text before a line's value (indent, `- `, key and `: `), and the value.
    let head_and_value = |line: &str| -> Option<(String, String)> {
        let (_, kv) = split_line(line);
        let (key, value) = kv?;
        let start = line.find(key)? + key.len() + 1;
        let head = format!("{} ", &line[..start]);
        Some((head, value.to_owned()))
    };
    match m {
        Mutation::RenameKey(i, new) => {
            let i = at(i, lines);
            if let (_, Some((key, _))) = split_line(&lines[i]) {
                let key = key.to_owned();
                lines[i] = lines[i].replacen(&key, new, 1);
            }
        }
        Mutation::Delete(i) => {
            let i = at(i, lines);
            lines.remove(i);
        }
        Mutation::Duplicate(i) => {
            let i = at(i, lines);
            lines.insert(i, lines[i].clone());
        }
        Mutation::Retype(i, value) => {
            let i = at(i, lines);
            if let Some((head, _)) = head_and_value(&lines[i]) {
                // A multi-line value continues at the line's indentation plus two.
                let (indent, _) = split_line(&lines[i]);
                let value = value.replace('\n', &format!("\n{indent}"));
                lines[i] = format!("{head}{value}");
            }
        }
        Mutation::SwapValues(a, b) => {
            let (a, b) = (at(a, lines), at(b, lines));
            if let (Some((ha, va)), Some((hb, vb))) = (head_and_value(&lines[a]), head_and_value(&lines[b])) {
                lines[a] = format!("{ha}{vb}");
                lines[b] = format!("{hb}{va}");
            }
        }
        Mutation::InsertKey(i, depth, key, value) => {
            let i = at(i, lines);
            let value = value.replace('\n', &format!("\n{}", "  ".repeat(depth + 1)));
            lines.insert(i, format!("{}{key}: {value}", "  ".repeat(*depth)));
        }
        Mutation::Indent(i, delta) => {
            let i = at(i, lines);
            let line = &lines[i];
            let (indent, _) = split_line(line);
            let width = (indent.len() as i64 + i64::from(*delta)).max(0) as usize;
            lines[i] = format!("{}{}", " ".repeat(width), &line[indent.len()..]);
        }
        Mutation::Tab(i) => {
            let i = at(i, lines);
            lines[i].insert(0, '\t');
        }
        Mutation::DocumentSeparator(i) => {
            let i = at(i, lines);
            lines.insert(i, "---".to_owned());
        }
    }
}

/// An example policy (or all three as one stream of documents), edited.
fn mutated_example() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        3 => (0..EXAMPLES.len()).prop_map(|i| EXAMPLES[i].1.to_owned()),
        1 => Just(EXAMPLES.map(|(_, text)| text).join("---\n")),
    ];
    (base, prop::collection::vec(mutation(), 1..5)).prop_map(|(text, mutations)| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for m in &mutations {
            mutate(&mut lines, m);
        }
        lines.join("\n") + "\n"
    })
}

/// What a policy file's text means to the loader, with every promise checked:
/// - no panic (the property fails on one), and the same answer twice (loading is a function of the text);
/// - every error placed at a line and column inside the text ([`placed_within`]);
/// - an accepted document is one serde accepts too, document for document, and means what serde reads in it: the
///   validator walked a tree of its own, so this is where the two parsers would disagree;
/// - what the loader accepts it accepts again once written out with every default spelled out (so no value the
///   validator would refuse got in through serde's reading);
/// - nothing serde (or the defaulter) refuses passes the validator: its errors, every one placed, are what users
///   read, never serde's first one alone.
pub(crate) fn load_agrees_with_serde(text: &str) -> Result<(), TestCaseError> {
    let file = Path::new("p.yaml");
    let first = policy::load_str(file, text);
    placed_within(text, &first)?;
    prop_assert_eq!(&first, &policy::load_str(file, text), "loading twice gave two answers");
    if let Ok(policies) = &first {
        let raws = policy::raw::parse_documents(text);
        prop_assert!(raws.is_ok(), "accepted, but serde refuses it: {:?}", raws.err());
        let raws = raws.unwrap();
        prop_assert_eq!(
            raws.len(),
            policies.len(),
            "documents accepted and documents serde reads"
        );
        for (raw, accepted) in raws.into_iter().zip(policies) {
            let read = policy::convert::to_policy(raw, file);
            prop_assert_eq!(
                read.as_ref(),
                Ok(accepted),
                "serde reads another policy in the same text"
            );
            let written = policy::raw::to_yaml(&policy::convert::to_raw(accepted)).unwrap();
            let again = policy::load_str(file, &written);
            prop_assert_eq!(
                again,
                Ok(vec![accepted.clone()]),
                "accepted, but refused once written out:\n{}",
                written
            );
        }
    }
    // The validator's own verdict, document by document, before serde is asked.
    if let Ok(documents) = policy::spanned::parse(text) {
        let mut errors = Vec::new();
        for doc in &documents {
            policy::validate::check(doc, &mut errors);
        }
        // The two parsers may still differ on syntax (libyaml, under yaml_serde, refuses some tabs YAML 1.2
        // allows); the loader then reports serde's error, placed, which `placed_within` checked. What must not
        // differ is the meaning of a text both read as YAML.
        let libyaml_reads_it = || {
            yaml_serde::Deserializer::from_str(text)
                .all(|doc| <yaml_serde::Value as serde::Deserialize>::deserialize(doc).is_ok())
        };
        if errors.is_empty() && !documents.is_empty() && libyaml_reads_it() {
            match policy::raw::parse_documents(text) {
                Err(e) => prop_assert!(false, "the validator passed what serde refuses: {:?}", e),
                Ok(raws) => {
                    prop_assert_eq!(
                        raws.len(),
                        documents.len(),
                        "documents validated and documents serde reads"
                    );
                    for raw in raws {
                        let converted = policy::convert::to_policy(raw, file);
                        prop_assert!(
                            converted.is_ok(),
                            "the validator passed what the defaulter refuses: {:?}",
                            converted.err()
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    // Runs of 1,024 and 20,000 cases found the inputs kept in `shrunk` below (the tag after 13,401 cases); 30,000
    // found nothing once they were fixed. 512 in CI.
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Keys renamed, deleted, duplicated or added, values retyped or swapped between fields, lines re-indented or
    /// split into documents, in the example policies: a policy serde reads the same way, or placed errors.
    #[test]
    fn edited_example_policies_load_as_serde_reads_them_or_fail_with_placed_errors(text in mutated_example()) {
        load_agrees_with_serde(&text)?;
    }
}

#[test]
fn the_example_policies_pass_the_properties_unedited() {
    for (name, text) in EXAMPLES {
        policy::load_str(Path::new(name), text).unwrap();
        load_agrees_with_serde(text).unwrap();
    }
    load_agrees_with_serde(&EXAMPLES.map(|(_, text)| text).join("---\n")).unwrap();
}

/// Bytes no UTF-8 text holds: a lone continuation byte, a sequence cut short, an overlong encoding, a UTF-16
/// surrogate, a code point above U+10FFFF, bytes that never occur, a UTF-16 byte order mark.
fn not_utf8() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0x80u8..=0xBF).prop_map(|b| vec![b]),
        Just(vec![0xE2, 0x82]),
        Just(vec![0xC0, 0xAF]),
        Just(vec![0xED, 0xA0, 0x80]),
        Just(vec![0xF4, 0x90, 0x80, 0x80]),
        (0xF5u8..=0xFF).prop_map(|b| vec![b]),
        Just(vec![0xFF, 0xFE]),
    ]
}

/// Where the character at byte `offset` of `text` is, as YAML counts: lines broken at `\r\n`, `\r` or `\n`,
/// columns in characters, both from 1.
fn line_and_col(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut col) = (1, 1);
    let mut chars = text[..offset].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
            (line, col) = (line + 1, 1);
        } else if c != '\r' {
            col += 1;
        }
    }
    (line, col)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Bytes that are not UTF-8, put anywhere in an example policy (edited or not) in a file: the file is refused
    /// with one error, placed at the first bad byte's line and column, never read in part.
    #[test]
    fn a_policy_file_with_bytes_that_are_not_utf8_is_refused_at_the_first_of_them(
        text in prop_oneof![(0..EXAMPLES.len()).prop_map(|i| EXAMPLES[i].1.to_owned()), mutated_example()],
        inserts in prop::collection::vec((any::<prop::sample::Index>(), not_utf8()), 1..4),
    ) {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let mut at: Vec<(usize, Vec<u8>)> =
            inserts.into_iter().map(|(i, bytes)| (*i.get(&boundaries), bytes)).collect();
        at.sort_by_key(|(offset, _)| *offset);
        let first = at[0].0;
        let mut bytes = Vec::new();
        let mut from = 0;
        for (offset, bad) in &at {
            bytes.extend_from_slice(&text.as_bytes()[from..*offset]);
            bytes.extend_from_slice(bad);
            from = *offset;
        }
        bytes.extend_from_slice(&text.as_bytes()[from..]);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, &bytes).unwrap();
        let errors = policy::load_paths(&[&file]).unwrap_err();
        prop_assert_eq!(errors.0.len(), 1, "{}", errors);
        let (line, col) = line_and_col(&text, first);
        let shown = errors.to_string();
        prop_assert!(
            shown.starts_with(&format!("{}:{line}:{col}: not UTF-8 text: byte 0x", file.display())),
            "{} (the first bad byte is at {}:{})", shown, line, col
        );
        prop_assert!(shown.contains(&format!("(at offset {first})")), "{}", shown);
        // Policies read from git are decoded by the same function.
        prop_assert_eq!(&policy::decode(&file, bytes).unwrap_err(), &errors.0[0]);
    }
}

/// Shrunk inputs of `edited_example_policies_load_as_serde_reads_them_or_fail_with_placed_errors`, each kept as a
/// plain test (the regression file's seeds replay only while the strategies stay as they are).
mod shrunk {
    use super::*;

    fn cpu_mixed_fleet(from: &str, to: &str) -> String {
        let text = EXAMPLES[0].1;
        assert!(text.contains(from), "{from:?} is not in the example");
        text.replacen(from, to, 1)
    }

    /// `text` is refused with exactly the error `expected` (one line, placed), and the loader agrees with serde on it.
    fn refused_as_serde_reads_it(text: &str, expected: &str) {
        let e = policy::load_str(Path::new("p.yaml"), text).unwrap_err().to_string();
        assert_eq!(e, expected);
        load_agrees_with_serde(text).unwrap();
    }

    /// libyaml (under yaml_serde) refuses a tab before a comment where YAML 1.2 and saphyr-parser allow it: the
    /// validator passes the text, and serde's error is the one reported, placed. Not a bug, but the one way the two
    /// parsers still differ that the property meets.
    #[test]
    fn a_tab_before_a_comment_is_refused_by_serde_with_a_placed_error() {
        refused_as_serde_reads_it(
            &format!("\t{}", EXAMPLES[0].1),
            "p.yaml:1:1: found character that cannot start any token, while scanning for the next token",
        );
    }

    /// The validator read `010` as ten, as YAML 1.2's core schema does; yaml_serde reads it as a string, so the
    /// policy was refused by serde's first error alone. The validator now reads it as yaml_serde does.
    #[test]
    fn a_count_with_a_leading_zero_is_refused_by_the_validator_as_serde_reads_it() {
        refused_as_serde_reads_it(
            &cpu_mixed_fleet("perCycle: 4       #", "perCycle: 010 #"),
            "p.yaml:21:15: spec.budgets.perCycle: expected a whole number, found a string",
        );
    }

    /// The validator ignored tags and read `!!str 5` as the count 5; serde read the string "5" as a percentage and
    /// the defaulter refused it, at the document's first line rather than at the value. Tags are now refused where
    /// they are written.
    #[test]
    fn a_tagged_value_is_refused_where_it_is_written() {
        refused_as_serde_reads_it(
            &cpu_mixed_fleet("perService: 25%", "perService: !!str 5"),
            "p.yaml:23:17: spec.budgets.perService: tags such as !!str are not supported in policies; write the \
             value without it (quoted, if it is a string)",
        );
    }
}

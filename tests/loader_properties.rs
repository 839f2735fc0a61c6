//! No input makes a loader panic: arbitrary bytes, arbitrary YAML, and near-miss policies all end in `Ok` or in
//! errors that point inside the file.

use std::path::Path;

use proptest::prelude::*;

use ecs_rebalancer::model::Snapshot;
use ecs_rebalancer::policy;

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
    match policy::load_str(Path::new("p.yaml"), text) {
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

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

#[test]
fn the_base_policy_of_these_properties_is_valid() {
    policy::load_str(Path::new("p.yaml"), VALID).unwrap();
}

//! The chaos soak in CI (issue 18), short and bounded: `scripts/chaos/chaos.py` runs real processes (moto_server
//! behind a proxy it cuts, `twin serve` with faults, two `run` replicas it kills, pauses past their lease and
//! starts again) and its checker (`scripts/chaos/check.py`) judges seven invariants from the twin's journal and the
//! raw table alone. The long soak and its reliability table are in docs/benchmarks.md.
//!
//! Built only with the `chaos` feature: the replicas need its hidden `--time-scale` (a cycle every 0.2 s instead of
//! 10 s) and the broken build needs `--unfenced`. scripts/test.sh turns it on.
#![cfg(feature = "chaos")]

use std::path::Path;
use std::process::Command;

/// Runs the soak on the hot fixture; returns its exit status and its reliability table.
fn soak(out: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("python3")
        .arg(format!("{root}/scripts/chaos/chaos.py"))
        .args(["--bin", env!("CARGO_BIN_EXE_ecs-rebalancer")])
        .args(["--snapshot", &format!("{root}/tests/fixtures/snapshot-hot.json")])
        .args(["--policy", &format!("{root}/scripts/chaos/policy.yaml")])
        .args(["--cluster", "shop", "--time-scale", "50", "--lease", "3"])
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("python3 runs scripts/chaos/chaos.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let table = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "the soak printed no table ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), table)
}

fn count(table: &serde_json::Value, key: &str) -> u64 {
    table[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing from {table:#}"))
}

#[test]
fn a_short_soak_with_kills_pauses_and_outages_breaks_no_invariant() {
    let out = tempfile::tempdir().unwrap();
    let (status, table) = soak(
        out.path(),
        &["--seed", "7", "--cycles", "300", "--minutes", "4", "--settle", "15"],
    );
    assert_eq!(status, 0, "a violation or a replica that died on its own:\n{table:#}");
    for (key, v) in table["violations"].as_object().expect("violations") {
        assert_eq!(v, 0, "{key}: {table:#}");
    }
    // The soak did what it promises: many cycles, every kind of fault, and actions the checker judged.
    assert!(count(&table, "cycles") >= 150, "{table:#}");
    for fault in ["kills", "pauses", "outages"] {
        assert!(count(&table, fault) >= 1, "no {fault}: {table:#}");
    }
    assert!(count(&table, "mutationsByController") >= 1, "{table:#}");
}

/// The deliberately broken build: replica r1 acts without the lease (`--unfenced`), so it sends mutations while r0
/// leads. Only scale-outs and foreign drains are made (they give both replicas work); no kill hands r1 the lease.
#[test]
fn a_replica_acting_without_the_lease_is_caught_by_the_checker() {
    let out = tempfile::tempdir().unwrap();
    let (status, table) = soak(
        out.path(),
        &[
            "--unfenced",
            "--events",
            "scale-out,foreign-drain",
            "--seed",
            "3",
            "--cycles",
            "100000",
            "--minutes",
            "1.5",
            "--settle",
            "5",
        ],
    );
    assert_eq!(status, 1, "the checker let an unfenced replica pass:\n{table:#}");
    assert!(count(&table["violations"], "fenced") >= 1, "{table:#}");
}

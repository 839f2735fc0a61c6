//! The integration tests as one binary (ripgrep's `tests/tests.rs`): one module per file of `tests/`, linked once
//! instead of once per file. `tests/run_loop.rs` is a binary of its own (see `Cargo.toml`). Cargo.toml turns
//! `autotests` off, so a file of `tests/` runs only if it is a module here or a `[[test]]` target:
//! `every_file_of_tests_is_compiled` below keeps it so.

mod common;

mod chaos;
mod cluster_query_language;
mod damaged_ledger;
mod deploy;
mod docs;
mod ledger_contract;
mod loader_properties;
mod operations;
mod placement_properties;
mod placement_rules;
mod plan_properties;
mod plan_rules;
mod policy_bounds;
mod policy_files;
mod policy_from_git;
mod production;
mod reconcile_lease;
mod sdk_against_moto;
mod sdk_against_twin;
mod simulate_scenarios;
mod snapshot_files;
mod twin_clients;
mod twin_rules;
mod twin_server;

/// Every `tests/*.rs` is a module of this binary or a test target of its own in `Cargo.toml`.
#[test]
fn every_file_of_tests_is_compiled() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = std::fs::read_to_string(root.join("tests/tests.rs")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        let (Some(stem), Some("rs")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let is_module = modules.lines().any(|l| l == format!("mod {stem};"));
        let is_target = manifest.lines().any(|l| l == format!("path = \"tests/{stem}.rs\""));
        assert!(
            is_module || is_target,
            "tests/{stem}.rs is never compiled: add `mod {stem};` to tests/tests.rs"
        );
    }
}

//! The policy language from a user's side: the shipped examples, `validate` on good and broken files, the
//! cross-file rules.

use std::path::{Path, PathBuf};

use crate::common;

use ecs_rebalancer::policy::{self, convert, raw, ActionKind, CountOrPercent, Metric, Mode};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn validate(dir: &Path, args: &[&str]) -> (i32, String, String) {
    common::cli(dir, &[&["validate"], args].concat())
}

#[test]
fn validate_accepts_the_shipped_examples_silently() {
    let (code, stdout, stderr) = validate(&repo("."), &["policies/"]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", ""));
}

#[test]
fn every_example_policy_round_trips_through_the_loader() {
    let policies = policy::load_paths(&[repo("policies")]).unwrap();
    assert!(
        policies.len() >= 3,
        "expected at least three example policies, found {}",
        policies.len()
    );
    for p in &policies {
        let text = raw::to_yaml(&convert::to_raw(p)).unwrap();
        let again = policy::load_str(&p.source, &text).unwrap_or_else(|e| panic!("{}:\n{e}\n{text}", p.name));
        assert_eq!(again, vec![p.clone()], "{} changed on a round trip", p.name);
    }
}

#[test]
fn the_examples_mean_what_their_comments_say() {
    let policies = policy::load_paths(&[repo("policies")]).unwrap();
    let by_name = |n: &str| policies.iter().find(|p| p.name == n).unwrap();

    let spread = by_name("spread-by-count");
    assert_eq!(spread.metric, Metric::Count);
    assert_eq!(spread.mode, Mode::DryRun, "dry-run is the default");
    assert!(spread.applies_to("staging") && spread.applies_to("staging-eu") && !spread.applies_to("prod"));

    let cpu = by_name("cpu-mixed-fleet");
    assert_eq!(cpu.actions, [ActionKind::StopTasks, ActionKind::RedeployServices]);
    assert_eq!(cpu.budgets.per_service, CountOrPercent::Percent(25));

    let prod = by_name("production-cautious");
    assert!(prod.allows(ActionKind::DrainInstances));
    assert_eq!(prod.budgets.concurrent_drains, 1);
    assert_eq!(prod.cooldown.new_instance.as_secs(), 600);
    assert!(prod.applies_to("prod-eu-1") && !prod.applies_to("prod"));
}

/// One `file:line:col: message` line per error, every error of every file, exit 2, nothing on stdout.
#[test]
fn validate_reports_every_error_in_a_folder_of_broken_policies() {
    let fixtures = repo("tests/fixtures");
    let (code, stdout, stderr) = validate(&fixtures, &["policies-broken"]);
    let expected = std::fs::read_to_string(fixtures.join("policies-broken.expected")).unwrap();
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert_eq!(stderr, expected);
    for line in stderr.lines() {
        let mut parts = line.splitn(4, ':');
        let (file, line_no, col) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        assert!(file.starts_with("policies-broken/"), "{line}");
        assert!(
            line_no.parse::<u32>().is_ok() && col.parse::<u32>().is_ok(),
            "not file:line:col: {line}"
        );
    }
}

#[test]
fn each_broken_file_is_caught_for_its_own_reason() {
    let fixtures = repo("tests/fixtures");
    let cases = [
        ("unknown-key.yaml", "unknown key \"metrik\"; did you mean \"metric\"?"),
        (
            "bad-metric.yaml",
            "unknown metric \"cpu\"; valid metrics: count, cpu-unreserved",
        ),
        (
            "target-above-trigger.yaml",
            "spec.threshold.target (0.2) must be below spec.threshold.trigger (0.2)",
        ),
        ("bad-duration.yaml", "spec.interval: 10 has no unit"),
        ("syntax-error.yaml", "YAML syntax error"),
        ("wrong-api-version.yaml", "unsupported apiVersion \"ecs-rebalancer/v2\""),
    ];
    for (file, message) in cases {
        let (code, _, stderr) = validate(&fixtures, &[&format!("policies-broken/{file}")]);
        assert_eq!(code, 2, "{file}");
        assert!(stderr.contains(message), "{file}: expected {message:?} in\n{stderr}");
    }
}

#[test]
fn two_policies_claiming_one_cluster_name_both_files() {
    let fixtures = repo("tests/fixtures");
    let (code, _, stderr) = validate(
        &fixtures,
        &[
            "policies-broken/duplicate-cluster-a.yaml",
            "policies-broken/duplicate-cluster-b.yaml",
        ],
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim_end(),
        "policies-broken/duplicate-cluster-b.yaml:6:14: cluster pattern \"prod-eu-1\" overlaps \"prod-*\", which is \
         already claimed by policy \"claims-prod\" in policies-broken/duplicate-cluster-a.yaml:6:14; a cluster is \
         governed by one policy"
    );
    // Each file alone is fine.
    let (code, _, _) = validate(&fixtures, &["policies-broken/duplicate-cluster-a.yaml"]);
    assert_eq!(code, 0);
}

#[test]
fn missing_paths_and_empty_folders_are_errors_not_silent_success() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = validate(dir.path(), &["nope.yaml", "."]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nope.yaml: cannot read"), "{stderr}");
    assert!(
        stderr.contains(".: no *.yaml or *.yml policy files in this folder"),
        "{stderr}"
    );
}

#[test]
fn a_file_may_hold_several_policies_and_they_are_checked_against_each_other() {
    let text = "\
apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata: {name: one}
spec: {clusters: [a], metric: count, threshold: {trigger: 0.2, target: 0.1}}
---
apiVersion: ecs-rebalancer/v1
kind: BalancePolicy
metadata: {name: one}
spec: {clusters: [a], metric: count, threshold: {trigger: 0.2, target: 0.1}}
";
    let e = policy::load_str(Path::new("two.yaml"), text).unwrap_err().to_string();
    assert_eq!(
        e,
        "two.yaml:8:18: metadata.name \"one\" is already used by the policy in two.yaml:3:18\n\
         two.yaml:9:19: cluster \"a\" is already claimed by policy \"one\" in two.yaml:4:19; a cluster is governed \
         by one policy"
    );
    let (first, second) = text.split_once("---\n").unwrap();
    let ok = format!(
        "{first}---\n{}",
        second.replace("name: one", "name: two").replace("[a]", "[b]")
    );
    assert_eq!(policy::load_str(Path::new("two.yaml"), &ok).unwrap().len(), 2);
}

#[test]
fn at_run_time_a_cluster_matched_by_two_policies_is_refused_naming_both() {
    let load = |name: &str, cluster: &str| {
        let text = format!(
            "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {{name: {name}}}\n\
             spec: {{clusters: [\"{cluster}\"], metric: count, threshold: {{trigger: 0.2, target: 0.1}}}}\n"
        );
        policy::load_str(Path::new(&format!("{name}.yaml")), &text)
            .unwrap()
            .remove(0)
    };
    // `a*` and `*b` overlap only on names neither spells out, so validation cannot see it; selection must.
    let policies = [load("starts", "a*"), load("ends", "*b")];
    assert_eq!(
        policy::policy_for_cluster(&policies, "ax").unwrap().unwrap().name,
        "starts"
    );
    assert!(policy::policy_for_cluster(&policies, "zz").unwrap().is_none());
    let e = policy::policy_for_cluster(&policies, "ab").unwrap_err();
    assert_eq!(
        e.to_string(),
        "cluster \"ab\" is matched by more than one policy: starts (starts.yaml), ends (ends.yaml)"
    );
}

#[test]
fn defaults_are_filled_for_a_minimal_policy() {
    let text = "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: min}\n\
                spec: {clusters: [c], metric: mem-unreserved, threshold: {trigger: 0.3, target: 0.2}}\n";
    let p = policy::load_str(Path::new("min.yaml"), text).unwrap().remove(0);
    assert_eq!(p.mode, Mode::DryRun);
    assert_eq!(p.actions, [ActionKind::StopTasks]);
    assert_eq!(p.interval.as_secs(), 300);
    assert_eq!((p.budgets.max_unavailable, p.budgets.per_hour), (5, 60));
    assert_eq!(p.budgets.per_service, CountOrPercent::Count(1));
    assert_eq!(p.budgets.concurrent_drains, 1);
    assert_eq!(
        (p.cooldown.instance.as_secs(), p.cooldown.service.as_secs()),
        (600, 600)
    );
    assert_eq!(p.cooldown.new_instance.as_secs(), 300);
    assert!((p.utilization.max_unknown_share - 0.2).abs() < f64::EPSILON);
    assert!(p.exclude.services.is_empty());
}

#[test]
fn a_folder_gives_the_same_revision_however_its_path_is_spelled() {
    // Two replicas given `pol/` and `/etc/ecs-rebalancer/pol/` hold the same files: the same revision, or a new
    // leader would wait to re-read a source that has not changed, and records would cite two revisions.
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("pol");
    std::fs::create_dir(&pol).unwrap();
    std::fs::copy(repo("policies/cpu-mixed-fleet.yaml"), pol.join("fleet.yaml")).unwrap();
    let revision = |p: &Path| {
        ecs_rebalancer::source::PolicySource::path(p, "analytics-prod")
            .unwrap()
            .record()
            .unwrap()
            .revision
    };
    let plain = revision(&pol);
    assert!(plain.starts_with("sha256:"), "{plain}");
    assert_eq!(revision(&dir.path().join("pol/../pol/")), plain);
    assert_eq!(revision(&dir.path().join("./pol")), plain);
}

#[test]
fn a_file_may_end_with_a_document_separator_but_a_null_document_is_still_refused() {
    // Generated manifests often end each document with `---`; an empty document is no document.
    let dir = tempfile::tempdir().unwrap();
    let policy = "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: a}\nspec:\n  clusters: [x]\n  \
                  metric: count\n  threshold: {trigger: 0.2, target: 0.1}\n";
    std::fs::write(dir.path().join("ok.yaml"), format!("---\n{policy}---\n")).unwrap();
    let (code, _, stderr) = validate(dir.path(), &["ok.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(policy::load_paths(&[dir.path().join("ok.yaml")]).unwrap().len(), 1);

    std::fs::write(dir.path().join("null.yaml"), format!("{policy}---\nnull\n")).unwrap();
    let (code, _, stderr) = validate(dir.path(), &["null.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("null.yaml:9:1: policy: expected a mapping"), "{stderr}");
}

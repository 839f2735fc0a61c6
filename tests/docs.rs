//! The documentation against the program: no page calls a finished part unfinished, and the README's command table
//! names every flag each command takes (as its `--help` lists them).

use crate::common;

use std::path::Path;

fn pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

#[test]
fn no_page_calls_a_finished_part_unfinished() {
    for (path, text) in pages() {
        for stale in ["is being built", "(to come)"] {
            assert!(!text.contains(stale), "{path} says {stale:?}");
        }
    }
}

/// The long flags `ecs-rebalancer ARGS --help` lists, `--help` aside.
fn flags(args: &[&str]) -> Vec<String> {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--help");
    let (code, help, _) = common::cli(Path::new(env!("CARGO_MANIFEST_DIR")), &all);
    assert_eq!(code, 0, "{help}");
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-o, ").unwrap_or(l);
            let flag = l.strip_prefix("--")?.split([' ', '<', ',']).next()?;
            (flag != "help").then(|| format!("--{flag}"))
        })
        .collect()
}

#[test]
fn the_readme_command_table_names_every_flag_of_every_command() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let commands: &[&[&str]] = &[
        &["validate"],
        &["inspect"],
        &["placement"],
        &["plan"],
        &["simulate"],
        &["demo"],
        &["twin", "serve"],
        &["snapshot"],
        &["init"],
        &["run"],
        &["once"],
        &["status"],
        &["health"],
    ];
    for command in commands {
        let name = command.join(" ");
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}")))
            .unwrap_or_else(|| panic!("no README row for {name}"));
        for flag in flags(command) {
            let named = row.contains(&format!("{flag} ")) || row.contains(&format!("{flag}]"));
            let short = flag == "--output" && row.contains("[-o ");
            assert!(named || short, "the README row of `{name}` leaves out {flag}: {row}");
        }
    }
}

//! Shared by the integration tests: running the built binary.

use std::path::Path;
use std::process::Command;

/// Runs `ecs-rebalancer ARGS…` in `dir`; returns the exit code, stdout and stderr.
pub fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ecs-rebalancer");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    )
}

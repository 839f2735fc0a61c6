//! Shared by the integration tests: running the built binary, `twin serve` and `moto_server`, and reading their
//! answers.

#[allow(dead_code)]
pub mod git;
#[allow(dead_code)]
pub mod http;
#[allow(dead_code)]
pub mod moto;

use std::path::Path;
use std::process::Command;

#[allow(dead_code)]
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

#[allow(unused_imports)]
pub use http::get;

/// `GET path` on a local server, as JSON (the twin's own endpoints).
#[allow(dead_code)]
pub async fn get_json(addr: &str, path: &str) -> serde_json::Value {
    serde_json::from_str(&get(addr, path).await.1).expect("JSON")
}

/// `ecs-rebalancer twin serve` in a child process, killed on drop.
#[allow(dead_code)]
pub struct TwinServer {
    child: std::process::Child,
    pub addr: String,
}

#[allow(dead_code)]
impl TwinServer {
    pub fn start(snapshot: &Path, extra: &[&str]) -> TwinServer {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-rebalancer"))
            .args(["twin", "serve", "--listen", "127.0.0.1:0", "--snapshot"])
            .arg(snapshot)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start twin serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("twin serve said {line:?}"))
            .to_owned();
        TwinServer { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, and wait for the process to exit.
    pub fn terminate(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        self.child.wait().ok();
    }
}

impl Drop for TwinServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The lines a child process writes to stderr, collected as they come (its JSON logs).
#[allow(dead_code)]
pub struct StderrLines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

#[allow(dead_code)]
impl StderrLines {
    /// Takes `child`'s stderr (spawned with `Stdio::piped()`) and reads it on a thread of its own.
    pub fn follow(child: &mut std::process::Child) -> StderrLines {
        use std::io::BufRead;
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        StderrLines(lines)
    }

    /// The first JSON log line past line `after` whose message is `message`, with its index; waits up to `limit`.
    pub async fn wait_for(
        &self,
        after: usize,
        message: &str,
        limit: std::time::Duration,
    ) -> (usize, serde_json::Value) {
        let start = std::time::Instant::now();
        loop {
            let found = self
                .0
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .skip(after)
                .filter_map(|(n, l)| Some((n, serde_json::from_str::<serde_json::Value>(l).ok()?)))
                .find(|(_, l)| l["message"] == message);
            if let Some(found) = found {
                return found;
            }
            assert!(
                start.elapsed() < limit,
                "no {message:?} past line {after} within {limit:?}:\n{}",
                self.0.lock().unwrap().join("\n")
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Sends SIGTERM to a child process (what a service manager does to stop the controller).
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// A lease another replica holds and promised for a whole hour: a replica started beside it follows throughout.
pub fn lease_held_for_an_hour_by_another() -> ecs_rebalancer::ledger::LeaseRecord {
    ecs_rebalancer::ledger::LeaseRecord {
        holder: "other-replica".into(),
        epoch: 1,
        version: "v1".into(),
        duration_ms: 3_600_000,
        renewed_at: chrono::Utc::now(),
        released: false,
        policy: None,
    }
}

//! `moto_server` for the tests that need real DynamoDB or STS semantics: one server per test binary, shared by every
//! module of `tests/tests.rs` (`tests/moto/ecs_server.py`, moto's whole server), started on first use on 127.0.0.1
//! and gone when the binary exits (it serves until its stdin closes). `scripts/test.sh` installs moto through pip
//! when it is missing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

static SERVER: OnceLock<(Mutex<Child>, String)> = OnceLock::new();

/// The endpoint of this binary's moto server (`http://127.0.0.1:PORT`).
pub fn endpoint() -> String {
    let (_, endpoint) = SERVER.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/ecs_server.py");
        let mut child = Command::new("python3")
            .args([script, "--port", "0", "--until-stdin-closes"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (scripts/test.sh installs what the tests need)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read moto's first line");
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| {
            panic!("moto did not start ({line:?}); run scripts/test.sh, which installs moto[server] through pip")
        });
        (Mutex::new(child), format!("http://{addr}"))
    });
    endpoint.clone()
}

/// A name no other test of this run uses (moto keeps state for the life of the server).
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A moto server of its own, with moto's request log (werkzeug's line per request) collected from its stderr: for
/// the tests that count what a client asks. Killed on drop.
pub struct Logged {
    child: Child,
    pub endpoint: String,
    log: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Logged {
    pub fn start() -> Logged {
        Self::start_with("--log-requests")
    }

    /// With `--log-operations`: a line `operation SERVICE:Action` per AWS call (see [`Logged::operations`]).
    pub fn start_logging_operations() -> Logged {
        Self::start_with("--log-operations")
    }

    fn start_with(log: &str) -> Logged {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/ecs_server.py");
        let mut child = Command::new("python3")
            .args([script, "--port", "0", "--until-stdin-closes", log])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/test.sh installs what the tests need)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read moto's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("moto did not start ({line:?})"))
            .to_owned();
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Logged {
            child,
            endpoint: format!("http://{addr}"),
            log,
        }
    }

    /// The operations logged so far (`dynamodb:GetItem`, `dynamodb:TransactWriteItems Put,ConditionCheck`, …).
    pub fn operations(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("operation "))
            .map(str::to_owned)
            .collect()
    }

    /// Requests logged so far (every AWS JSON-protocol call is a `POST /`).
    pub fn requests(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("\"POST / HTTP/1.1\""))
            .count()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

//! A git server on 127.0.0.1 for the policy-source tests: git's own `git http-backend` (smart HTTP, protocol v2)
//! behind a small HTTP server that can require a token (HTTP basic authentication, as GitHub and GitLab take one),
//! and can be stopped to make the source unreachable. And a repository to commit policies into and force-push.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// `git ARGS` in `dir`, isolated from the machine's git configuration; panics on failure; stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=policy-bot",
            "-c",
            "user.email=bot@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8").trim().to_owned()
}

/// A bare repository `policies.git` under a root the server exports, and a clone to commit from.
pub struct Repo {
    pub root: PathBuf,
    work: PathBuf,
}

impl Repo {
    pub fn new(dir: &Path) -> Repo {
        let root = dir.join("srv");
        let work = dir.join("work");
        std::fs::create_dir_all(&root).unwrap();
        git(&root, &["init", "--bare", "-q", "policies.git"]);
        git(dir, &["init", "-q", "work"]);
        git(
            &work,
            &["remote", "add", "origin", root.join("policies.git").to_str().unwrap()],
        );
        Repo { root, work }
    }

    /// The bare repository's path.
    pub fn bare(&self) -> PathBuf {
        self.root.join("policies.git")
    }

    /// Writes `files` (path, text), commits them and pushes `main`; the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, text) in files {
            let p = self.work.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", message]);
        git(&self.work, &["push", "-q", "--force", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Rewrites history: `main` goes back to `commit` (locally); the next [`Repo::commit`] force-pushes.
    pub fn reset_to(&self, commit: &str) {
        git(&self.work, &["reset", "-q", "--hard", commit]);
    }
}

/// The HTTP server, in a thread of its own with its own runtime (so sync and async tests alike can use it).
pub struct GitServer {
    pub addr: SocketAddr,
    /// Requests refused for want of the right token.
    refused: Arc<AtomicU32>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct Shared {
    root: PathBuf,
    /// `Basic base64(user:token)` every request must carry, when a token is required.
    expected: Option<String>,
    refused: Arc<AtomicU32>,
}

impl GitServer {
    /// Serves the repositories under `root`; with `token`, only to requests that present it.
    pub fn start(root: &Path, token: Option<&str>) -> GitServer {
        Self::start_on("127.0.0.1:0".parse().unwrap(), root, token)
    }

    /// As [`GitServer::start`], on a given address (to bring a stopped server back where it was).
    pub fn start_on(addr: SocketAddr, root: &Path, token: Option<&str>) -> GitServer {
        let refused = Arc::new(AtomicU32::new(0));
        let shared = Shared {
            root: root.to_owned(),
            expected: token.map(|t| format!("Basic {}", base64(format!("x-access-token:{t}").as_bytes()))),
            refused: Arc::clone(&refused),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the git server");
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(serve).with_state(shared);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = ready_rx.recv().expect("the git server starts");
        GitServer {
            addr,
            refused,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `git+http://ADDR/policies.git?QUERY`.
    pub fn source(&self, query: &str) -> String {
        format!("git+http://{}/policies.git?{query}", self.addr)
    }

    pub fn refused(&self) -> u32 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Stops serving: the address refuses connections from now on.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(State(shared): State<Shared>, request: Request) -> Response {
    if let Some(expected) = &shared.expected {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"policies\""),
                )
                .body(Body::from("authentication required\n"))
                .unwrap();
        }
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default().to_vec();
    let header_value = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let env = vec![
        ("GIT_PROJECT_ROOT", shared.root.display().to_string()),
        ("GIT_HTTP_EXPORT_ALL", "1".to_owned()),
        ("REQUEST_METHOD", parts.method.to_string()),
        ("PATH_INFO", parts.uri.path().to_owned()),
        ("QUERY_STRING", parts.uri.query().unwrap_or("").to_owned()),
        ("CONTENT_TYPE", header_value(header::CONTENT_TYPE)),
        ("CONTENT_LENGTH", body.len().to_string()),
        ("HTTP_CONTENT_ENCODING", header_value(header::CONTENT_ENCODING)),
        (
            "HTTP_GIT_PROTOCOL",
            header_value(header::HeaderName::from_static("git-protocol")),
        ),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
    ];
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("git http-backend");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let out = child.wait_with_output().expect("git http-backend output");
        let _ = writer.join();
        out.stdout
    })
    .await
    .unwrap();
    cgi_response(&output)
}

/// A CGI answer (headers, a blank line, the body) as an HTTP response.
fn cgi_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)));
    let Some((head_end, body_start)) = split else {
        return Response::builder()
            .status(500)
            .body(Body::from("bad CGI answer"))
            .unwrap();
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut response = Response::builder().status(200);
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response.body(Body::from(raw[body_start..].to_vec())).unwrap()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_the_rfc_4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}

//! Where the policy governing a cluster comes from, and how a new revision replaces it (docs/operations.md,
//! "Policies from git").
//!
//! A source is a plain path (re-read when its files change) or a git ref (fetched on start and every
//! `--policy-poll`, see [`git`]). Either way a new revision is loaded with the same checks as `validate`, and:
//! - a revision whose files mean what the policy in force already means changes nothing (no reload);
//! - an invalid revision is refused with every error, once per revision, and the last good policy stays;
//! - a fetch that fails keeps the last good policy;
//! - while no revision has ever been good there is no policy, and the controller does not act.
//!
//! The revision is a git commit id, or `sha256:` and the hash of the files for a plain path: it is recorded on the
//! lease and on every action planned under it.

pub mod credential;
pub mod git;
pub mod location;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ledger::{PolicyRecord, RejectedRevision};
use crate::policy::{self, Policy, PolicyFile};
use credential::Credential;
use git::{Fetched, Fetcher};
pub use location::{GitLocation, Location, LocationError};

/// How long one fetch may take before it is abandoned as failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What a look at the source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A new revision is in force (the first one, or a change).
    Applied,
    /// A new revision did not validate; the last good policy (if any) stays.
    Invalid { revision: String, errors: Vec<String> },
    /// The source could not be read (network, authentication, a missing ref); the last good policy stays.
    FetchFailed(String),
}

/// Why a plain path gives no policy at start-up.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
    #[error("no policy in {path} governs cluster {cluster:?}")]
    NoneForCluster { path: String, cluster: String },
    #[error("cannot make a private repository for the git source: {0}")]
    Repository(std::io::Error),
    #[error("{0}: a token is sent over https only (or over http to this machine, for rehearsals)")]
    ClearText(String),
}

/// The policy in force and what it came from.
#[derive(Debug, Clone)]
struct InForce {
    policy: Policy,
    /// The hash of the files it was loaded from: a revision with the same files changes nothing.
    content: String,
    applied_at: DateTime<Utc>,
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

enum Origin {
    Path { path: PathBuf, fingerprint: Fingerprint },
    Git(Poller),
}

/// A git source's fetches: one at a time, in the background, so that a slow server never holds up the lease.
struct Poller {
    fetcher: Arc<Fetcher>,
    credential: Arc<Mutex<Credential>>,
    every: Duration,
    next: Instant,
    running: Option<(Instant, JoinHandle<Result<Fetched, String>>)>,
}

/// The policy governing one cluster, from its source.
pub struct PolicySource {
    location: Location,
    cluster: String,
    origin: Origin,
    in_force: Option<InForce>,
    rejected: Option<RejectedRevision>,
    /// When the last look that found the source's files equal to those in force began.
    confirmed_at: Option<Instant>,
    /// The policy in force, for what must follow it outside the controller (which CloudWatch metrics to read).
    watch: watch::Sender<Option<Policy>>,
}

impl PolicySource {
    /// A plain path: the policy governing `cluster` is loaded now, and any problem is the caller's bad input.
    pub fn path(path: &Path, cluster: &str) -> Result<PolicySource, PolicyError> {
        let mut source = PolicySource::new(
            Location::Path(path.to_owned()),
            cluster,
            Origin::Path {
                path: path.to_owned(),
                fingerprint: fingerprint(path),
            },
        );
        let files = policy::read_paths(path).map_err(|d| PolicyError::Invalid(d.to_string()))?;
        let policy = choose(&files, cluster, &path.display().to_string())?;
        let content = content_hash(&files, Some(path));
        let revision = format!("sha256:{content}");
        source.apply(policy, revision, content, Instant::now());
        Ok(source)
    }

    /// A git source: nothing is fetched yet (the first [`PolicySource::poll`], or [`PolicySource::fetch_now`],
    /// does), so there is no policy until then.
    pub fn git(
        location: GitLocation,
        cluster: &str,
        credential: Credential,
        every: Duration,
    ) -> Result<PolicySource, PolicyError> {
        if !matches!(credential, Credential::None) && !location.may_carry_credentials() {
            return Err(PolicyError::ClearText(location.to_string()));
        }
        let fetcher = Fetcher::new(location.clone()).map_err(PolicyError::Repository)?;
        Ok(PolicySource::new(
            Location::Git(location),
            cluster,
            Origin::Git(Poller {
                fetcher: Arc::new(fetcher),
                credential: Arc::new(Mutex::new(credential)),
                every,
                next: Instant::now(),
                running: None,
            }),
        ))
    }

    fn new(location: Location, cluster: &str, origin: Origin) -> PolicySource {
        PolicySource {
            location,
            cluster: cluster.to_owned(),
            origin,
            in_force: None,
            rejected: None,
            confirmed_at: None,
            watch: watch::Sender::new(None),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The policy in force; `None` while no revision has ever been good.
    pub fn current(&self) -> Option<&Policy> {
        self.in_force.as_ref().map(|f| &f.policy)
    }

    /// The policy in force from now on: the current one, then each good revision as it is applied.
    pub fn watch(&self) -> watch::Receiver<Option<Policy>> {
        self.watch.subscribe()
    }

    /// What the lease records: the policy in force and the last revision refused.
    pub fn record(&self) -> Option<PolicyRecord> {
        let f = self.in_force.as_ref()?;
        Some(PolicyRecord {
            revision: f.policy.revision.clone(),
            name: f.policy.name.clone(),
            source: self.location.to_string(),
            applied_at: Some(f.applied_at),
            rejected: self.rejected.clone(),
        })
    }

    /// Whether a look at the source that began at or after `since` found the policy in force still current: what
    /// a new leader waits for before it acts when the lease names another revision than its own.
    pub fn confirmed_since(&self, since: Instant) -> bool {
        self.confirmed_at.is_some_and(|t| t >= since)
    }

    /// Looks at the source again as soon as possible: now for a path, at the next [`PolicySource::poll`] for git.
    pub fn refresh(&mut self) {
        match &mut self.origin {
            Origin::Path { fingerprint, .. } => fingerprint.clear(),
            Origin::Git(p) => p.next = p.next.min(Instant::now()),
        }
    }

    /// One look, without waiting: a path is re-read if its files changed; a git source collects a fetch that
    /// finished, and starts one when due. `None`: nothing new.
    pub async fn poll(&mut self) -> Option<Update> {
        match &mut self.origin {
            Origin::Path { path, fingerprint } => {
                let started = Instant::now();
                let now = self::fingerprint(path);
                if now == *fingerprint {
                    self.confirmed_at = Some(started);
                    return None;
                }
                *fingerprint = now;
                let path = path.clone();
                let outcome = policy::read_paths(&path).map_err(|d| lines(&d.to_string()));
                self.take(started, outcome, None)
            }
            Origin::Git(poller) => {
                if let Some((started, handle)) = poller.running.take_if(|(_, h)| h.is_finished()) {
                    poller.next = started + poller.every;
                    let fetched = handle.await.unwrap_or_else(|e| Err(format!("the fetch stopped: {e}")));
                    return self.collect(started, fetched);
                }
                if poller.running.is_none() && Instant::now() >= poller.next {
                    let started = Instant::now();
                    poller.running = Some((started, tokio::spawn(fetch(poller))));
                }
                None
            }
        }
    }

    /// Fetches now and waits for it (a git source; a path is re-read): what `once` does before its cycle.
    pub async fn fetch_now(&mut self) -> Option<Update> {
        match &mut self.origin {
            Origin::Path { .. } => {
                self.refresh();
                self.poll().await
            }
            Origin::Git(poller) => {
                let started = Instant::now();
                let fetched = fetch(poller).await;
                poller.next = started + poller.every;
                self.collect(started, fetched)
            }
        }
    }

    fn collect(&mut self, started: Instant, fetched: Result<Fetched, String>) -> Option<Update> {
        match fetched {
            Ok(f) => self.take(started, f.files.map_err(|d| lines(&d.to_string())), Some(f.commit)),
            Err(why) => Some(Update::FetchFailed(why)),
        }
    }

    /// Applies the files of a new revision, or refuses them. `commit`: the revision's id (git); `None`: the hash of
    /// the files (a path).
    fn take(
        &mut self,
        started: Instant,
        files: Result<Vec<PolicyFile>, Vec<String>>,
        commit: Option<String>,
    ) -> Option<Update> {
        let root = match &self.location {
            Location::Path(p) => Some(p.clone()),
            Location::Git(_) => None,
        };
        let content = files.as_ref().ok().map(|f| content_hash(f, root.as_deref()));
        let revision = match (&commit, &content) {
            (Some(c), _) => c.clone(),
            (None, Some(h)) => format!("sha256:{h}"),
            (None, None) => "unreadable".to_owned(),
        };
        if content.is_some() && content.as_deref() == self.in_force.as_ref().map(|f| f.content.as_str()) {
            // The same files (a commit elsewhere in the repository, a touched file, a bad edit reverted): nothing to
            // reload, and nothing refused any more.
            self.confirmed_at = Some(started);
            self.rejected = None;
            return None;
        }
        if self.rejected.as_ref().is_some_and(|r| r.revision == revision) {
            return None; // refused already, and said so
        }
        let loaded = files.and_then(|files| {
            choose(&files, &self.cluster, &self.location.to_string()).map_err(|e| lines(&e.to_string()))
        });
        match loaded {
            Ok(policy) => {
                // `files` were read, so their hash is there.
                self.apply(policy, revision, content.unwrap_or_default(), started);
                Some(Update::Applied)
            }
            Err(errors) => {
                self.rejected = Some(RejectedRevision {
                    revision: revision.clone(),
                    errors: errors.clone(),
                    at: Some(Utc::now()),
                });
                Some(Update::Invalid { revision, errors })
            }
        }
    }

    fn apply(&mut self, mut policy: Policy, revision: String, content: String, started: Instant) {
        policy.revision = revision;
        self.watch.send_replace(Some(policy.clone()));
        self.in_force = Some(InForce {
            policy,
            content,
            applied_at: Utc::now(),
        });
        self.rejected = None;
        self.confirmed_at = Some(started);
    }
}

/// One fetch on a blocking thread, with the credential of the moment and [`FETCH_TIMEOUT`]. A refused fetch makes
/// a token from Secrets Manager be read again next time.
fn fetch(poller: &Poller) -> impl std::future::Future<Output = Result<Fetched, String>> + Send + 'static {
    let fetcher = Arc::clone(&poller.fetcher);
    let credential = Arc::clone(&poller.credential);
    async move {
        let token = credential.lock().await.token().await.map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = Arc::clone(&stop);
        let work = tokio::task::spawn_blocking(move || fetcher.fetch(token.as_ref(), &stopper));
        match tokio::time::timeout(FETCH_TIMEOUT, work).await {
            Ok(Ok(Ok(fetched))) => Ok(fetched),
            Ok(Ok(Err(e))) => {
                if e.auth {
                    credential.lock().await.forget();
                }
                Err(e.to_string())
            }
            Ok(Err(panicked)) => Err(format!("the fetch stopped: {panicked}")),
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                Err(format!(
                    "the fetch took longer than {}s and was abandoned",
                    FETCH_TIMEOUT.as_secs()
                ))
            }
        }
    }
}

/// The policy among `files` that governs `cluster`.
fn choose(files: &[PolicyFile], cluster: &str, source: &str) -> Result<Policy, PolicyError> {
    let policies = policy::load_files(files).map_err(|d| PolicyError::Invalid(d.to_string()))?;
    let chosen = policy::policy_for_cluster(&policies, cluster).map_err(|e| PolicyError::Invalid(e.to_string()))?;
    chosen.cloned().ok_or_else(|| PolicyError::NoneForCluster {
        path: source.to_owned(),
        cluster: cluster.to_owned(),
    })
}

/// SHA-256 over each file's path and text, in path order, as hex.
/// The hash of the policy files: each one's name under `root` (the path the source was given, so that `pol/` and
/// `/etc/pol/` give the same revision; a git source's names are already the repository's) and its text.
fn content_hash(files: &[PolicyFile], root: Option<&Path>) -> String {
    let mut named: Vec<(&Path, &str)> = files
        .iter()
        .map(|f| {
            (
                root.and_then(|r| f.path.strip_prefix(r).ok()).unwrap_or(&f.path),
                f.text.as_str(),
            )
        })
        .collect();
    named.sort_unstable();
    let mut hasher = Sha256::new();
    for (path, text) in named {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// What is there to load at `path`: every file's name, modification time and size.
fn fingerprint(path: &Path) -> Fingerprint {
    let stat = |p: &Path| {
        let m = std::fs::metadata(p).ok();
        (
            p.to_owned(),
            m.as_ref().and_then(|m| m.modified().ok()),
            m.map_or(0, |m| m.len()),
        )
    };
    match std::fs::read_dir(path) {
        Ok(entries) => {
            let mut all: Vec<_> = entries.filter_map(Result::ok).map(|e| stat(&e.path())).collect();
            all.sort();
            all
        }
        Err(_) => vec![stat(path)],
    }
}

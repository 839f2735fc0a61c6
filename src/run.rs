//! The production controller: `once` (one cycle, for cron or EventBridge Scheduler) and `run` (continuous), both
//! under the cluster's lease, over any [`EcsApi`] and [`Ledger`].
//!
//! A cycle runs only while this replica holds the lease; the lease is renewed while the cycle runs, and the
//! controller proves it fresh before every claim and every ECS mutation (`reconcile::Controller::under_lease`).
//! `run` re-reads the policy path when it changes (an invalid edit keeps the last good policy and is reported),
//! spaces cycles by the policy's interval with ±10 % jitter (sooner while actions are in flight), and on shutdown
//! finishes the step it is in and releases the lease so a follower takes over at once.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::time::Instant;

use crate::ecs::{EcsApi, EcsError};
use crate::ledger::lease::{Elector, LeaseConfig, Role};
use crate::ledger::{Fence, Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::policy::{self, Policy};
#[cfg(feature = "crash-points")]
use crate::reconcile::CrashPoint;
use crate::reconcile::{error_policy, Controller, CycleError, CycleReport};

pub mod repeats;

use repeats::Repeats;

/// Who this replica is and how it leads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster: String,
    pub holder: String,
    pub lease: LeaseConfig,
    /// Where to stop dead, for the crash-recovery tests (`--crash-at`; only in builds with the `crash-points` feature).
    #[cfg(feature = "crash-points")]
    pub crash_at: Option<CrashPoint>,
}

/// What one `once` did; each maps to an exit code (docs/operations.md).
#[derive(Debug)]
pub enum OnceOutcome {
    /// A cycle ran (it may have acted, or found nothing to do).
    Ran(Box<CycleReport>),
    /// Another replica holds the lease: nothing done.
    NotLeader(Option<Fence>),
    /// The cycle refused to act: the observation was incomplete or the lease could not be proven.
    Refused(String),
}

/// Runs `work` while renewing the lease every `renew_every`.
async fn with_renewal<L: Ledger, F: Future>(
    elector: &mut Elector,
    ledger: &L,
    metrics: &Metrics,
    work: F,
) -> F::Output {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(elector.config().renew_every) => {
                if let Err(e) = lease_round(elector, ledger, metrics).await {
                    tracing::warn!(error = %e, "{LEASE_ROUND_FAILED}");
                }
            }
        }
    }
}

/// One lease round, with the lease gauge updated; the caller reports errors (the lease's freshness runs out on its
/// own).
async fn lease_round<L: Ledger>(elector: &mut Elector, ledger: &L, metrics: &Metrics) -> Result<Role, LedgerError> {
    let role = elector.step(ledger, Utc::now()).await;
    let held = i64::from(elector.view().fence().is_some());
    metrics
        .lease_held
        .get_or_create(&vec![("cluster", elector.cluster().to_owned())])
        .set(held);
    role
}

const LEASE_ROUND_FAILED: &str = "lease round failed; acting stops when the lease can no longer be proven";

/// Records a cycle's result in the metrics.
fn observe_cycle(metrics: &Metrics, cluster: &str, result: &Result<CycleReport, CycleError>) {
    let label = match result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    metrics
        .cycles
        .get_or_create(&vec![("cluster", cluster.to_owned()), ("result", label.to_owned())])
        .inc();
    match result {
        Ok(report) => {
            metrics
                .score
                .get_or_create(&vec![("cluster", cluster.to_owned())])
                .set(report.plan.before.score);
            for sent in &report.acted {
                metrics
                    .actions
                    .get_or_create(&vec![
                        ("kind", sent.kind.as_str().to_owned()),
                        ("outcome", "sent".into()),
                    ])
                    .inc();
            }
            metrics
                .actions
                .get_or_create(&vec![("kind", "any".into()), ("outcome", "not_sent".into())])
                .inc_by(report.not_sent.len() as u64);
            for settled in &report.settled {
                let labels = vec![
                    ("kind", settled.kind.as_str().to_owned()),
                    ("outcome", settled.state.as_str().to_owned()),
                ];
                metrics.actions.get_or_create(&labels).inc();
            }
            for skip in &report.plan.skipped {
                metrics
                    .skips
                    .get_or_create(&vec![("reason", skip.label.to_owned())])
                    .inc();
            }
        }
        Err(CycleError::Observe(e @ (EcsError::Throttled(_) | EcsError::Incomplete(_)))) => {
            metrics
                .api_errors
                .get_or_create(&vec![("kind", e.label().to_owned())])
                .inc();
        }
        Err(_) => {}
    }
}

/// Logs a cycle's result; a failure whose text repeats is logged once per [`repeats::REPEAT_EVERY`] (`repeats`
/// `None`: every time, as `once` does).
fn log_cycle(result: &Result<CycleReport, CycleError>, repeats: Option<&mut Repeats>) {
    match result {
        Ok(r) => tracing::info!(
            status = ?r.plan.status,
            score = r.plan.before.score,
            acted = r.acted.len(),
            settled = r.settled.len(),
            not_sent = r.not_sent.len(),
            in_flight = r.in_flight,
            summary = %r.plan.summary,
            "cycle"
        ),
        Err(e) => {
            let text = e.to_string();
            let admitted = match repeats {
                Some(r) => r.admit(&format!("cycle: {text}"), Instant::now()),
                None => Some(0),
            };
            if let Some(held_back) = admitted {
                tracing::warn!(error = %text, kind = e.label(), repeated = held_back, "cycle failed; nothing acted on");
            }
        }
    }
}

/// The controller a leader runs: acting only while `elector`'s lease is provably fresh (and, built with the
/// `crash-points` feature, stopping dead where `settings.crash_at` says).
fn leading_controller<'a, E: EcsApi + Sync, L: Ledger + Sync>(
    ecs: &'a E,
    ledger: &'a L,
    policy: Policy,
    settings: &Settings,
    elector: &Elector,
) -> Controller<'a, E, L> {
    let controller = Controller::new(ecs, ledger, policy, &settings.cluster).under_lease(elector.view());
    #[cfg(feature = "crash-points")]
    let controller = controller.crash_at(settings.crash_at);
    controller
}

/// One cycle under the lease, then the lease is released.
pub async fn once<E: EcsApi + Sync, L: Ledger + Sync>(
    ecs: &E,
    ledger: &L,
    policy: Policy,
    settings: &Settings,
    metrics: &Metrics,
) -> Result<OnceOutcome, CycleError> {
    let mut elector = Elector::new(&settings.cluster, &settings.holder, settings.lease);
    match acquire_or_wait(&mut elector, ledger).await? {
        Role::Follower(holder) => {
            tracing::info!(leader = ?holder, "another replica holds the lease and renews it; nothing to do");
            return Ok(OnceOutcome::NotLeader(holder));
        }
        Role::Leader(fence) => tracing::info!(epoch = fence.epoch, holder = %fence.holder, "lease acquired"),
    }
    let mut controller = leading_controller(ecs, ledger, policy, settings, &elector);
    let result = with_renewal(&mut elector, ledger, metrics, controller.cycle(Utc::now())).await;
    observe_cycle(metrics, &settings.cluster, &result);
    log_cycle(&result, None);
    if let Err(e) = elector.release(ledger, Utc::now()).await {
        tracing::warn!(error = %e, "releasing the lease failed; a follower takes over after one lease");
    }
    match result {
        Ok(report) => Ok(OnceOutcome::Ran(Box::new(report))),
        Err(CycleError::Observe(e @ EcsError::Incomplete(_))) => Ok(OnceOutcome::Refused(e.to_string())),
        Err(CycleError::Ledger(e @ LedgerError::Fenced { .. })) => Ok(OnceOutcome::Refused(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Takes the lease if it is free or released; if another holder has it, watches it for one lease: a renewal means
/// that holder is alive (follow), silence for the whole lease means it is gone (take over, as any follower would).
async fn acquire_or_wait<L: Ledger>(elector: &mut Elector, ledger: &L) -> Result<Role, LedgerError> {
    let first = elector.step(ledger, Utc::now()).await?;
    if matches!(first, Role::Leader(_)) {
        return Ok(first);
    }
    let seen = ledger.read_lease(elector.cluster()).await?.map(|l| l.version);
    let config = elector.config();
    let started = Instant::now();
    tracing::info!(leader = ?first, "the lease is held; watching it for one lease before deciding");
    while started.elapsed() < config.duration * 2 {
        tokio::time::sleep(config.renew_every.min(Duration::from_secs(1))).await;
        match elector.step(ledger, Utc::now()).await? {
            leader @ Role::Leader(_) => return Ok(leader),
            follower @ Role::Follower(_) => {
                let now = ledger.read_lease(elector.cluster()).await?.map(|l| l.version);
                if now != seen {
                    return Ok(follower);
                }
            }
        }
    }
    Ok(first)
}

/// The policy from a file or folder, re-read when its files change.
pub struct PolicySource {
    path: PathBuf,
    cluster: String,
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
    current: Policy,
    /// The policy in force, for what must follow it outside the controller (which CloudWatch metrics to read).
    in_force: tokio::sync::watch::Sender<Policy>,
}

/// What is there to load at `path`: every file's name, modification time and size.
fn fingerprint(path: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
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

/// Why a policy path gives no policy for the cluster.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
    #[error("no policy in {path} governs cluster {cluster:?}")]
    NoneForCluster { path: String, cluster: String },
}

fn load_for(path: &Path, cluster: &str) -> Result<Policy, PolicyError> {
    let policies = policy::load_paths(&[path]).map_err(|d| PolicyError::Invalid(d.to_string()))?;
    let chosen = policy::policy_for_cluster(&policies, cluster).map_err(|e| PolicyError::Invalid(e.to_string()))?;
    chosen.cloned().ok_or_else(|| PolicyError::NoneForCluster {
        path: path.display().to_string(),
        cluster: cluster.to_owned(),
    })
}

impl PolicySource {
    /// Loads the policy governing `cluster` now; any problem is the caller's bad input.
    pub fn open(path: &Path, cluster: &str) -> Result<PolicySource, PolicyError> {
        let fingerprint = fingerprint(path);
        let current = load_for(path, cluster)?;
        Ok(PolicySource {
            path: path.to_owned(),
            cluster: cluster.to_owned(),
            fingerprint,
            in_force: tokio::sync::watch::Sender::new(current.clone()),
            current,
        })
    }

    pub fn current(&self) -> &Policy {
        &self.current
    }

    /// The policy in force from now on: the current one, then each good reload as it is picked up.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Policy> {
        self.in_force.subscribe()
    }

    /// Re-reads the path if anything in it changed. `Some(Ok)`: a new policy; `Some(Err)`: an invalid edit, the
    /// last good policy stays; `None`: unchanged.
    pub fn reload(&mut self) -> Option<Result<&Policy, PolicyError>> {
        let now = fingerprint(&self.path);
        if now == self.fingerprint {
            return None;
        }
        self.fingerprint = now;
        Some(load_for(&self.path, &self.cluster).map(|p| {
            self.in_force.send_replace(p.clone());
            self.current = p;
            &self.current
        }))
    }
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// Runs until `shutdown` resolves: a lease round every `renew_every` (a follower reads the lease once per round), a
/// cycle whenever one is due and this replica leads. On shutdown the step in progress finishes and the lease is
/// released.
///
/// Errors back off as `error_policy` says (60 s, 120 s after throttling or a ledger outage, ±10 %): a failed cycle
/// delays the next cycle, and a failed lease round delays the next round unless this replica still holds a fresh
/// lease (then it keeps renewing every `renew_every`, or it would lose the lease for sure). Identical warnings are
/// logged once per [`repeats::REPEAT_EVERY`] with the count held back.
///
/// A configuration error (the AWS configuration, a ledger table or a cluster that does not exist) ends the run at
/// once: no retry can fix it. The lease is released first, and the error returned for the caller to report.
pub async fn run<E: EcsApi + Sync, L: Ledger + Sync>(
    ecs: &E,
    ledger: &L,
    mut source: PolicySource,
    settings: &Settings,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CycleError> {
    let mut elector = Elector::new(&settings.cluster, &settings.holder, settings.lease);
    let mut controller = leading_controller(ecs, ledger, source.current().clone(), settings, &elector);
    let mut repeats = Repeats::new(repeats::REPEAT_EVERY);
    let mut next_cycle = Instant::now();
    let mut leading = false;
    let mut fatal = None;
    tokio::pin!(shutdown);
    loop {
        let mut next_round = settings.lease.renew_every;
        match lease_round(&mut elector, ledger, metrics).await {
            Ok(role) => {
                repeats.clear("lease: ");
                metrics.set_ready(true);
                match role {
                    Role::Leader(fence) if !leading => {
                        leading = true;
                        tracing::info!(epoch = fence.epoch, holder = %fence.holder, "leading");
                    }
                    Role::Leader(_) => {}
                    Role::Follower(holder) => {
                        if leading {
                            tracing::warn!(leader = ?holder, "lost the lease; following");
                        }
                        leading = false;
                    }
                }
            }
            Err(e) if e.is_configuration() => {
                fatal = Some(CycleError::Ledger(e));
                break;
            }
            Err(e) => {
                metrics.set_ready(false);
                if let Some(held_back) = repeats.admit(&format!("lease: {e}"), Instant::now()) {
                    tracing::warn!(error = %e, kind = e.label(), repeated = held_back, "{LEASE_ROUND_FAILED}");
                }
                if elector.view().fence().is_none() {
                    next_round = jittered(error_policy(&CycleError::Ledger(e)));
                }
            }
        }
        match source.reload() {
            Some(Ok(p)) => {
                tracing::info!(policy = %p.name, "policy reloaded");
                metrics
                    .policy_reloads
                    .get_or_create(&vec![("result", "ok".into())])
                    .inc();
                controller.set_policy(p.clone());
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "policy edit is invalid; keeping the last good policy");
                metrics
                    .policy_reloads
                    .get_or_create(&vec![("result", "invalid".into())])
                    .inc();
            }
            None => {}
        }
        if elector.view().fence().is_some() && Instant::now() >= next_cycle {
            let result = with_renewal(&mut elector, ledger, metrics, controller.cycle(Utc::now())).await;
            observe_cycle(metrics, &settings.cluster, &result);
            if result.as_ref().is_err_and(CycleError::is_configuration) {
                fatal = result.err();
                break;
            }
            if result.is_ok() {
                repeats.clear("cycle: ");
            }
            log_cycle(&result, Some(&mut repeats));
            let wait = match &result {
                Ok(report) => report.requeue_after,
                Err(e) => error_policy(e),
            };
            next_cycle = Instant::now() + jittered(wait);
        }
        // IMPORTANT: only a replica that may act waits for its next cycle; for a follower `next_cycle` is in the
        // past, and waking for it would poll the ledger as fast as the floor below allows.
        let wake = match elector.view().fence() {
            Some(_) => next_round.min(next_cycle.saturating_duration_since(Instant::now())),
            None => next_round,
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(wake.max(Duration::from_millis(50))) => {}
        }
    }
    match &fatal {
        // The error itself is the caller's to report, once.
        Some(_) => tracing::info!("stopping on a configuration error no retry can fix: releasing the lease"),
        None => tracing::info!("shutting down: releasing the lease"),
    }
    if let Err(e) = elector.release(ledger, Utc::now()).await {
        tracing::warn!(error = %e, "releasing the lease failed; a follower takes over after one lease");
    }
    fatal.map_or(Ok(()), Err)
}

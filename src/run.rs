//! The production controller: `once` (one cycle, for cron or EventBridge Scheduler) and `run` (continuous), both
//! under the cluster's lease, over any [`EcsApi`] and [`Ledger`].
//!
//! A cycle runs only while this replica holds the lease; the lease is renewed while the cycle runs, and the
//! controller proves it fresh before every claim and every ECS mutation (`reconcile::Controller::under_lease`).
//! `run` follows the policy source (`source::PolicySource`: a path re-read when it changes, a git ref fetched every
//! poll; an invalid revision keeps the last good policy and is reported), acts only under the revision the lease
//! records, spaces cycles by the policy's interval with ±10 % jitter (sooner while actions are in flight), and on shutdown
//! finishes the step it is in and releases the lease so a follower takes over at once.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use crate::ecs::{EcsApi, EcsError};
use crate::ledger::lease::{Elector, LeaseConfig, Role};
use crate::ledger::{Fence, Ledger, LedgerError};
use crate::metrics::Metrics;
use crate::policy::Policy;
#[cfg(feature = "crash-points")]
use crate::reconcile::CrashPoint;
use crate::reconcile::{error_policy, Controller, CycleError, CycleReport};
use crate::source::{PolicySource, Update};

#[cfg(feature = "chaos")]
pub mod chaos;
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
    /// The chaos soak's switches (`--time-scale`, `--unfenced`; only in builds with the `chaos` feature).
    #[cfg(feature = "chaos")]
    pub chaos: chaos::Chaos,
}

impl Settings {
    /// How long the run loop waits for `wait`: shortened in a chaos soak (`chaos::Chaos::scaled`).
    fn paced(&self, wait: Duration) -> Duration {
        #[cfg(feature = "chaos")]
        {
            self.chaos.scaled(wait)
        }
        #[cfg(not(feature = "chaos"))]
        {
            wait
        }
    }

    /// Whether this replica acts without the lease: only a chaos build's deliberately broken `--unfenced` replica.
    fn unfenced(&self) -> bool {
        #[cfg(feature = "chaos")]
        {
            self.chaos.unfenced
        }
        #[cfg(not(feature = "chaos"))]
        {
            false
        }
    }
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
            unanswered = r.unanswered.len(),
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
    let controller = Controller::new(ecs, ledger, policy, &settings.cluster);
    let controller = if settings.unfenced() {
        controller
    } else {
        controller.under_lease(elector.view())
    };
    #[cfg(feature = "crash-points")]
    let controller = controller.crash_at(settings.crash_at);
    controller
}

/// One cycle under the lease, with the policy in force at `source` (fetched by the caller), then the lease is
/// released. The lease records the policy's revision before the cycle acts.
pub async fn once<E: EcsApi + Sync, L: Ledger + Sync>(
    ecs: &E,
    ledger: &L,
    source: &PolicySource,
    settings: &Settings,
    metrics: &Metrics,
) -> Result<OnceOutcome, CycleError> {
    let Some(policy) = source.current().cloned() else {
        return Ok(OnceOutcome::Refused(NO_GOOD_REVISION.into()));
    };
    let mut elector = Elector::new(&settings.cluster, &settings.holder, settings.lease);
    elector.set_policy(source.record());
    match acquire_or_wait(&mut elector, ledger).await? {
        Role::Follower(holder) => {
            tracing::info!(leader = %named(holder.as_ref()), "another replica holds the lease and renews it; nothing to do");
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
    let holder = match &first {
        Role::Leader(f) | Role::Follower(Some(f)) => Some(f),
        Role::Follower(None) => None,
    };
    tracing::info!(leader = %named(holder), "the lease is held; watching it for one lease before deciding");
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

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// Runs until `shutdown` resolves: a lease round every `renew_every` (a follower reads the lease once per round), a
/// cycle whenever one is due and this replica leads. On shutdown the step in progress finishes and the lease is
/// released.
///
/// The policy source is looked at every round (a git source fetches in the background every `--policy-poll`).
/// The lease records the policy in force, and a cycle runs only under the revision the lease names: a new revision
/// is written to the lease first. A new leader that finds the lease naming another revision than its own looks at
/// the source again and acts only once that look confirmed its policy as current, so a replica that has not yet
/// fetched cannot act on an older policy. While no revision has ever been good, nothing acts and `/readyz` says
/// not ready.
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
    let mut controller = None;
    let mut repeats = Repeats::new(repeats::REPEAT_EVERY);
    let mut next_cycle = Instant::now();
    let mut standing = Standing::default();
    let mut fatal = None;
    if let Some(p) = source.current() {
        metrics.set_policy(&p.revision, &p.name);
    }
    tokio::pin!(shutdown);
    loop {
        if let Some(update) = source.poll().await {
            report_update(&update, &source, metrics, Some(&mut repeats));
        }
        if let Some(policy) = source.current() {
            match &mut controller {
                None => controller = Some(leading_controller(ecs, ledger, policy.clone(), settings, &elector)),
                Some(c) if c.policy().revision != policy.revision => c.set_policy(policy.clone()),
                Some(_) => {}
            }
        }
        elector.set_policy(source.record());
        let mut next_round = settings.lease.renew_every;
        // A replica with no good policy does not compete for the lease: holding it, it would only keep a replica
        // that has one from acting.
        let round = match source.current() {
            Some(_) => lease_round(&mut elector, ledger, metrics).await,
            None => Ok(Role::Follower(None)),
        };
        match round {
            Ok(role) => {
                repeats.clear("lease: ");
                metrics.set_ready(source.current().is_some());
                standing.after_round(role, &elector, &mut source);
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
                    next_round = settings.paced(jittered(error_policy(&CycleError::Ledger(e))));
                }
            }
        }
        let may_act = settings.unfenced()
            || (standing.may_act(controller.as_ref().map(Controller::policy), &elector, &source)
                && elector.view().fence().is_some());
        if let Some(c) = controller.as_mut().filter(|_| may_act && Instant::now() >= next_cycle) {
            let result = with_renewal(&mut elector, ledger, metrics, c.cycle(Utc::now())).await;
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
            next_cycle = Instant::now() + settings.paced(jittered(wait));
        }
        // IMPORTANT: only a replica that may act waits for its next cycle; for a follower `next_cycle` is in the
        // past, and waking for it would poll the ledger as fast as the floor below allows.
        let wake = if may_act {
            next_round.min(next_cycle.saturating_duration_since(Instant::now()))
        } else {
            next_round
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

/// Where this replica stands: leading or not, and, newly leading, since when it must see its policy confirmed by
/// the source before it acts.
#[derive(Debug, Default)]
struct Standing {
    leading: bool,
    confirm_since: Option<Instant>,
}

impl Standing {
    /// After a lease round that answered `role`: a replica that takes over a lease naming another revision than its
    /// own looks at the source again before it acts.
    fn after_round(&mut self, role: Role, elector: &Elector, source: &mut PolicySource) {
        match role {
            Role::Leader(fence) if !self.leading => {
                self.leading = true;
                tracing::info!(epoch = fence.epoch, holder = %fence.holder, "leading");
                let ours = source.current().map(|p| p.revision.as_str());
                if let Some(previous) = elector.previous_policy().filter(|p| Some(p.revision.as_str()) != ours) {
                    tracing::info!(
                        previous = %previous.revision,
                        ours = ours.unwrap_or("none"),
                        "the lease names another policy revision than ours; looking at the source before acting"
                    );
                    self.confirm_since = Some(Instant::now());
                    source.refresh();
                }
            }
            Role::Leader(_) => {}
            Role::Follower(holder) => {
                if self.leading {
                    tracing::warn!(leader = %named(holder.as_ref()), "lost the lease; following");
                }
                self.leading = false;
            }
        }
    }

    /// IMPORTANT: a cycle runs only under the revision the lease records (`policy`: the controller's), and never on
    /// a revision not yet confirmed after a takeover from a leader that acted under another.
    fn may_act(&mut self, policy: Option<&Policy>, elector: &Elector, source: &PolicySource) -> bool {
        if self.confirm_since.is_some_and(|t| source.confirmed_since(t)) {
            self.confirm_since = None;
        }
        let recorded = elector.recorded_policy().map(|p| p.revision.as_str());
        self.confirm_since.is_none() && policy.is_some_and(|p| Some(p.revision.as_str()) == recorded)
    }
}

/// Logs and counts what a look at the policy source found (`repeats`: a failed fetch that repeats is logged once per
/// [`repeats::REPEAT_EVERY`]; `None`: every time, as `once` does).
pub fn report_update(update: &Update, source: &PolicySource, metrics: &Metrics, repeats: Option<&mut Repeats>) {
    match update {
        Update::Applied => {
            let Some(p) = source.current() else { return };
            tracing::info!(policy = %p.name, revision = %p.revision, source = %source.location(), "policy reloaded");
            metrics.count_reload("ok");
            metrics.set_policy(&p.revision, &p.name);
        }
        Update::Invalid { revision, errors } => {
            let error = errors.join("\n");
            match source.current() {
                Some(p) => tracing::error!(
                    revision = %revision,
                    error = %error,
                    in_force = %p.revision,
                    "policy edit is invalid; keeping the last good policy"
                ),
                None => tracing::error!(revision = %revision, error = %error, "{NO_GOOD_REVISION}"),
            }
            metrics.count_reload("invalid");
        }
        Update::FetchFailed(why) => {
            metrics.count_reload("fetch-failed");
            let admitted = match repeats {
                Some(r) => r.admit(&format!("policy: {why}"), Instant::now()),
                None => Some(0),
            };
            if let Some(held_back) = admitted {
                match source.current() {
                    Some(p) => tracing::warn!(
                        error = %why,
                        in_force = %p.revision,
                        repeated = held_back,
                        "fetching the policy failed; keeping the last good policy"
                    ),
                    None => tracing::error!(error = %why, repeated = held_back, "{NO_GOOD_REVISION}"),
                }
            }
        }
    }
}

const NO_GOOD_REVISION: &str = "no revision of the policy source has been good yet; not acting";

/// A lease holder as logs name it (`host-12-ab34 epoch 2`), or `?` when it could not be read.
fn named(holder: Option<&Fence>) -> String {
    holder.map_or_else(|| "?".to_owned(), ToString::to_string)
}

//! `run`'s loop on tokio's paused clock (hours pass in milliseconds, exactly): how often a follower reads the lease,
//! how errors back off, that a warning repeated with the same text is logged once per period, and that a
//! configuration error ends the run at once. The ledger and ECS are in-process (the memory ledger and the twin),
//! wrapped to count calls and to fail on demand.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use ecs_rebalancer::ecs::{EcsApi, EcsError, InstanceState};
use ecs_rebalancer::ledger::lease::LeaseConfig;
use ecs_rebalancer::ledger::memory::MemoryLedger;
use ecs_rebalancer::ledger::{
    ActionRecord, ActionState, Claim, CooldownTarget, EpisodeRecord, Fence, LeaseRecord, Ledger, LedgerError,
};
use ecs_rebalancer::metrics::Metrics;
use ecs_rebalancer::model::Snapshot;
use ecs_rebalancer::reconcile::CycleError;
use ecs_rebalancer::run::{run, Settings};
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
use ecs_rebalancer::source::PolicySource;
use ecs_rebalancer::twin::{Twin, TwinConfig};

const LEASE: Duration = Duration::from_secs(30);

const POLICY: &str = "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: p}\nspec:\n  \
                      clusters: [c]\n  metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  mode: enforce\n  \
                      interval: 5m\n";

/// The memory ledger, counting every call (and reads of the action log apart), failing every call with `fail` when
/// set.
#[derive(Default)]
struct Counting {
    inner: MemoryLedger,
    calls: AtomicU32,
    log_reads: AtomicU32,
    fail: Mutex<Option<LedgerError>>,
}

impl Counting {
    fn failing(e: LedgerError) -> Counting {
        Counting {
            fail: Mutex::new(Some(e)),
            ..Counting::default()
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn enter(&self) -> Result<(), LedgerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.fail.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Ledger for Counting {
    async fn claim(&self, record: ActionRecord, fence: Option<&Fence>) -> Result<Claim, LedgerError> {
        self.enter()?;
        self.inner.claim(record, fence).await
    }

    async fn update(
        &self,
        cluster: &str,
        id: &str,
        state: ActionState,
        outcome: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        self.enter()?;
        self.inner.update(cluster, id, state, outcome, now).await
    }

    async fn in_flight(&self, cluster: &str) -> Result<Vec<ActionRecord>, LedgerError> {
        self.enter()?;
        self.inner.in_flight(cluster).await
    }

    async fn since(&self, cluster: &str, since: DateTime<Utc>) -> Result<Vec<ActionRecord>, LedgerError> {
        self.enter()?;
        self.log_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.since(cluster, since).await
    }

    async fn set_cooldown(
        &self,
        cluster: &str,
        target: CooldownTarget,
        until: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.enter()?;
        self.inner.set_cooldown(cluster, target, until).await
    }

    async fn cooldowns(
        &self,
        cluster: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CooldownTarget, DateTime<Utc>)>, LedgerError> {
        self.enter()?;
        self.inner.cooldowns(cluster, now).await
    }

    async fn read_episode(&self, cluster: &str) -> Result<Option<EpisodeRecord>, LedgerError> {
        self.enter()?;
        self.inner.read_episode(cluster).await
    }

    async fn write_episode(
        &self,
        cluster: &str,
        episode: &EpisodeRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        self.enter()?;
        self.inner.write_episode(cluster, episode, fence).await
    }

    async fn read_lease(&self, cluster: &str) -> Result<Option<LeaseRecord>, LedgerError> {
        self.enter()?;
        self.inner.read_lease(cluster).await
    }

    async fn write_lease(
        &self,
        cluster: &str,
        lease: &LeaseRecord,
        expected_version: Option<&str>,
    ) -> Result<bool, LedgerError> {
        self.enter()?;
        self.inner.write_lease(cluster, lease, expected_version).await
    }
}

/// The twin, counting observations, failing them with `fail` when set.
struct Ecs {
    twin: Twin,
    observations: AtomicU32,
    fail: Option<EcsError>,
}

impl Ecs {
    fn new(fail: Option<EcsError>) -> Ecs {
        let snapshot = ClusterBuilder::new("c")
            .instance(instance("hot"))
            .instance(instance("cold"))
            .service(service("web").spread("instanceId").deployment(50, 200))
            .tasks("web", "hot", 4)
            .snapshot();
        Ecs {
            twin: Twin::new(snapshot, TwinConfig::default()),
            observations: AtomicU32::new(0),
            fail,
        }
    }
}

impl EcsApi for Ecs {
    async fn observe(&self) -> Result<Snapshot, EcsError> {
        self.observations.fetch_add(1, Ordering::SeqCst);
        match &self.fail {
            Some(e) => Err(e.clone()),
            None => self.twin.observe().await,
        }
    }

    async fn stop_task(&self, task_arn: &str, reason: &str) -> Result<(), EcsError> {
        self.twin.stop_task(task_arn, reason).await
    }

    async fn force_new_deployment(&self, service: &str) -> Result<(), EcsError> {
        self.twin.force_new_deployment(service).await
    }

    async fn set_instance_state(&self, arn: &str, state: InstanceState) -> Result<(), EcsError> {
        self.twin.set_instance_state(arn, state).await
    }
}

/// Log lines, as `run` writes them (text, no colours).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn count(&self, message: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(message))
            .count()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `run` for `how_long` of paused tokio time; returns what it returned and its log.
async fn run_for<L: Ledger + Sync>(ecs: &Ecs, ledger: &L, how_long: Duration) -> (Result<(), CycleError>, Logs) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    let source = PolicySource::path(&dir.path().join("policy.yaml"), "c").unwrap();
    let settings = Settings {
        cluster: "c".into(),
        holder: "me".into(),
        lease: LeaseConfig::new(LEASE),
        #[cfg(feature = "crash-points")]
        crash_at: None,
        #[cfg(feature = "chaos")]
        chaos: Default::default(),
    };
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let metrics = Metrics::default();
    let result = run(ecs, ledger, source, &settings, &metrics, tokio::time::sleep(how_long)).await;
    (result, logs)
}

/// A lease held by another replica that promised a whole hour: this replica follows throughout.
async fn held_by_another(ledger: &Counting) {
    let lease = LeaseRecord {
        holder: "other".into(),
        epoch: 1,
        version: "v1".into(),
        duration_ms: 3_600_000,
        renewed_at: Utc::now(),
        released: false,
        policy: None,
    };
    assert!(ledger.inner.write_lease("c", &lease, None).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_follower_reads_the_ledger_once_per_third_of_a_lease() {
    let ledger = Counting::default();
    held_by_another(&ledger).await;
    let ecs = Ecs::new(None);
    let (result, _) = run_for(&ecs, &ledger, Duration::from_secs(600)).await;
    result.unwrap();
    // One lease read per round, a round every 10 s (a third of 30 s), over 600 s; at most one more, the first.
    let calls = ledger.calls();
    assert!((55..=61).contains(&calls), "{calls} ledger calls in 600 s");
    assert_eq!(ecs.observations.load(Ordering::SeqCst), 0, "a follower never observes");
}

/// The action log is the ledger's one read that grows with history (a record per action, kept 30 days): settling
/// and planning share one read of it per cycle.
#[tokio::test(start_paused = true)]
async fn a_cycle_reads_the_action_log_once() {
    let ledger = Counting::default();
    let ecs = Ecs::new(None);
    let (result, logs) = run_for(&ecs, &ledger, Duration::from_secs(200)).await;
    result.unwrap();
    let cycles = logs.count("ecs_rebalancer::run: cycle ");
    assert!(cycles >= 2, "{cycles} cycles:\n{}", logs.text());
    assert!(
        logs.count("sent to ECS") >= 1,
        "the hot cluster was acted on:\n{}",
        logs.text()
    );
    assert!(logs.count("settled") >= 1, "an action was settled:\n{}", logs.text());
    assert_eq!(
        ledger.log_reads.load(Ordering::SeqCst) as usize,
        cycles,
        "{}",
        logs.text()
    );
}

#[tokio::test(start_paused = true)]
async fn ledger_errors_back_off_and_their_warning_is_not_repeated() {
    let ledger = Counting::failing(LedgerError::Unavailable("GetItem: dispatch failure: io error".into()));
    let ecs = Ecs::new(None);
    let (result, logs) = run_for(&ecs, &ledger, Duration::from_secs(9 * 60)).await;
    result.unwrap();
    // A round at 0 s, then one every 120 s ± 10 %: 5 in 9 minutes (4 at the slowest jitter, 6 at the fastest).
    let calls = ledger.calls();
    assert!((4..=6).contains(&calls), "{calls} ledger calls in 9 minutes");
    assert_eq!(
        logs.count("lease round failed"),
        1,
        "identical warnings are logged once per 10 minutes:\n{}",
        logs.text()
    );
}

#[tokio::test(start_paused = true)]
async fn failed_cycles_back_off_and_their_warning_is_not_repeated() {
    let ledger = Counting::default();
    let ecs = Ecs::new(Some(EcsError::Unavailable("ListContainerInstances: io error".into())));
    let (result, logs) = run_for(&ecs, &ledger, Duration::from_secs(9 * 60)).await;
    result.unwrap();
    // A cycle at 0 s, then one every 60 s ± 10 %: 9 or 10 in 9 minutes (11 at the fastest jitter).
    let cycles = ecs.observations.load(Ordering::SeqCst);
    assert!((9..=11).contains(&cycles), "{cycles} cycles in 9 minutes");
    assert_eq!(
        logs.count("cycle failed"),
        1,
        "identical warnings are logged once per 10 minutes:\n{}",
        logs.text()
    );
}

#[tokio::test(start_paused = true)]
async fn a_warning_repeated_past_the_period_is_logged_again_with_the_count_held_back() {
    let ledger = Counting::failing(LedgerError::Unavailable("GetItem: dispatch failure: io error".into()));
    let ecs = Ecs::new(None);
    let (result, logs) = run_for(&ecs, &ledger, Duration::from_secs(25 * 60)).await;
    result.unwrap();
    let warnings: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("lease round failed"))
        .map(str::to_owned)
        .collect();
    assert!(matches!(warnings.len(), 2 | 3), "{warnings:#?}");
    assert!(warnings[0].contains("repeated=0"), "{}", warnings[0]);
    assert!(!warnings[1].contains("repeated=0"), "{}", warnings[1]);
}

#[tokio::test(start_paused = true)]
async fn a_missing_table_ends_run_at_once_with_the_error() {
    let ledger = Counting::failing(LedgerError::Table("\"nope\" does not exist".into()));
    let ecs = Ecs::new(None);
    let (result, logs) = run_for(&ecs, &ledger, Duration::from_secs(3600)).await;
    let e = result.unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
    assert!(ledger.calls() <= 2, "no retry loop: {} calls", ledger.calls());
    assert_eq!(
        logs.count("lease round failed"),
        0,
        "reported once, by the caller:\n{}",
        logs.text()
    );
}

#[tokio::test(start_paused = true)]
async fn a_cluster_that_does_not_exist_ends_run_and_releases_the_lease() {
    let ledger = Counting::default();
    let ecs = Ecs::new(Some(EcsError::NotFound(
        "ListContainerInstances: ClusterNotFoundException".into(),
    )));
    let (result, _) = run_for(&ecs, &ledger, Duration::from_secs(3600)).await;
    assert!(
        matches!(result, Err(CycleError::Observe(EcsError::NotFound(_)))),
        "{result:?}"
    );
    assert_eq!(ecs.observations.load(Ordering::SeqCst), 1, "no retry loop");
    let lease = ledger.inner.read_lease("c").await.unwrap().unwrap();
    assert!(lease.released, "{lease:?}");
}

/// What `run` and `once` return is printed with its causes (`{:#}`): each cause once. (A ledger error used to read
/// "ledger: ledger unavailable: X: ledger unavailable: X".)
#[test]
fn a_cycle_error_prints_its_cause_once() {
    let e = anyhow::Error::from(CycleError::Ledger(LedgerError::Unavailable("GetItem: io error".into())));
    assert_eq!(format!("{e:#}"), "ledger unavailable: GetItem: io error");
    let config = ecs_rebalancer::aws::ConfigError::NoCredentials;
    let e = anyhow::Error::from(CycleError::Ledger(LedgerError::Config(config.clone())));
    assert_eq!(format!("{e:#}"), config.to_string());
}

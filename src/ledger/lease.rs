//! One lease per cluster, so only one replica acts: leader election over any [`Ledger`] whose only primitive is a
//! compare-and-swap of the lease item on its `version`.
//!
//! The rules (docs/ecs.md: DynamoDB; the DynamoDB lock client and client-go's leader election make the same points):
//! - **Time is measured on this process's monotonic clock, never on wall clocks.** The holder may act until
//!   `duration − margin` after it *sent* its last successful renewal. A follower takes over only after it has seen
//!   the same `version` for a whole `duration` of its own time, so the holder has stopped acting by then whatever
//!   either wall clock says.
//! - **Every takeover raises the epoch** (the fencing token). Claims carry the epoch and are written only if the
//!   lease still names it, so a deposed holder that wakes up late can claim nothing.
//! - **A released lease** (clean shutdown) may be taken at once.
//! - **Holder ids are unique per process** (host, pid and a random suffix): a restarted replica is a new holder and
//!   waits like any follower.

use chrono::{DateTime, Utc};
use tokio::time::{Duration, Instant};

use super::{Fence, LeaseRecord, Ledger, LedgerError, PolicyRecord};

/// Lease timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a renewal lets the holder act, and how long a follower waits for a silent holder.
    pub duration: Duration,
    /// How often the holder renews (well inside `duration`, so one lost renewal does not depose it).
    pub renew_every: Duration,
    /// Taken off the holder's side of `duration`, for clock-rate differences and scheduling delays.
    pub margin: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig::new(Duration::from_secs(30))
    }
}

impl LeaseConfig {
    /// Renewal every third of `duration`, margin a fifth.
    pub fn new(duration: Duration) -> LeaseConfig {
        LeaseConfig {
            duration,
            renew_every: duration / 3,
            margin: duration / 5,
        }
    }
}

/// What this replica is after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader(Fence),
    /// Someone else holds it (`None`: nobody could be read).
    Follower(Option<Fence>),
}

#[derive(Debug)]
enum State {
    Leading {
        fence: Fence,
        version: String,
        /// Until when this replica may act, on the monotonic clock.
        valid_until: Instant,
    },
    Following {
        /// The version last seen and when it was first seen.
        seen: Option<(String, Instant)>,
    },
}

/// This replica's side of the lease of one cluster.
#[derive(Debug)]
pub struct Elector {
    cluster: String,
    holder: String,
    config: LeaseConfig,
    state: State,
    view: LeaseView,
    /// The policy this replica acts under, written with every lease write.
    policy: Option<PolicyRecord>,
    /// The policy of the last lease write that succeeded: what this replica leads under.
    recorded: Option<PolicyRecord>,
    /// The policy on the lease as last read from another holder (or a released lease): what a new leader compares
    /// its own with.
    previous: Option<PolicyRecord>,
}

/// A cheap, shareable answer to "may I act now, and under which fence?", kept current by the [`Elector`] (the
/// controller asks it right before every claim and every ECS call).
#[derive(Debug, Clone, Default)]
pub struct LeaseView(std::sync::Arc<std::sync::Mutex<Option<(Fence, Instant)>>>);

impl LeaseView {
    /// The fence, only while the lease is provably fresh.
    pub fn fence(&self) -> Option<Fence> {
        let guard = self.0.lock().ok()?;
        let (fence, valid_until) = guard.as_ref()?;
        (Instant::now() < *valid_until).then(|| fence.clone())
    }

    fn set(&self, value: Option<(Fence, Instant)>) {
        if let Ok(mut g) = self.0.lock() {
            *g = value;
        }
    }
}

/// A holder id unique to this process: `host-pid-random`.
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

fn new_version() -> String {
    format!("{:016x}", fastrand::u64(..))
}

impl Elector {
    pub fn new(cluster: &str, holder: &str, config: LeaseConfig) -> Elector {
        Elector {
            cluster: cluster.to_owned(),
            holder: holder.to_owned(),
            config,
            state: State::Following { seen: None },
            view: LeaseView::default(),
            policy: None,
            recorded: None,
            previous: None,
        }
    }

    /// The policy to record on the lease from the next write on.
    pub fn set_policy(&mut self, policy: Option<PolicyRecord>) {
        self.policy = policy;
    }

    /// The policy the lease names since this replica's last successful write (`None` before one, or when it wrote
    /// none).
    pub fn recorded_policy(&self) -> Option<&PolicyRecord> {
        self.recorded.as_ref()
    }

    /// The policy of the lease this replica last read from another holder or found released: on a takeover, the
    /// one the previous leader acted under.
    pub fn previous_policy(&self) -> Option<&PolicyRecord> {
        self.previous.as_ref()
    }

    /// The view the controller consults.
    pub fn view(&self) -> LeaseView {
        self.view.clone()
    }

    fn follow(&mut self, seen: Option<(String, Instant)>) {
        self.view.set(None);
        self.state = State::Following { seen };
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn config(&self) -> LeaseConfig {
        self.config
    }

    /// The fence to claim with, only while the lease is provably fresh.
    pub fn fence(&self) -> Option<Fence> {
        match &self.state {
            State::Leading { fence, valid_until, .. } if Instant::now() < *valid_until => Some(fence.clone()),
            _ => None,
        }
    }

    /// Whether this replica believes it leads (fresh or not).
    pub fn is_leading(&self) -> bool {
        matches!(self.state, State::Leading { .. })
    }

    /// One round: renew if leading, else read and take over when allowed. A ledger error leaves the state as it
    /// was (a leader's freshness then runs out on its own).
    pub async fn step<L: Ledger>(&mut self, ledger: &L, now: DateTime<Utc>) -> Result<Role, LedgerError> {
        if let State::Leading { fence, version, .. } = &self.state {
            let (fence, version) = (fence.clone(), version.clone());
            if self.write(ledger, fence.epoch, Some(&version), now).await? {
                return Ok(Role::Leader(fence));
            }
            // Changed under us: either our own renewal whose answer was lost, or a takeover. Read and see.
            self.follow(None);
        }
        let current = ledger.read_lease(&self.cluster).await?;
        let Some(lease) = current else {
            return self.take(ledger, 1, None, now).await;
        };
        if lease.holder != self.holder || lease.released {
            self.previous.clone_from(&lease.policy);
        }
        if lease.holder == self.holder && !lease.released {
            // Ours (a renewal whose answer was lost): carry on at the same epoch.
            return self.take(ledger, lease.epoch, Some(&lease.version), now).await;
        }
        if lease.released {
            return self.take(ledger, lease.epoch + 1, Some(&lease.version), now).await;
        }
        let other = Fence {
            holder: lease.holder.clone(),
            epoch: lease.epoch,
        };
        let silent_since = match &self.state {
            State::Following { seen: Some((v, since)) } if *v == lease.version => *since,
            _ => {
                self.follow(Some((lease.version.clone(), Instant::now())));
                return Ok(Role::Follower(Some(other)));
            }
        };
        // Wait out the holder's own promise if it is longer than ours (replicas mid-rollout of a new duration).
        let holder_duration = Duration::from_millis(lease.duration_ms);
        if silent_since.elapsed() >= self.config.duration.max(holder_duration) {
            return self.take(ledger, lease.epoch + 1, Some(&lease.version), now).await;
        }
        Ok(Role::Follower(Some(other)))
    }

    async fn take<L: Ledger>(
        &mut self,
        ledger: &L,
        epoch: u64,
        expected: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Role, LedgerError> {
        if self.write(ledger, epoch, expected, now).await? {
            let fence = self.fence().unwrap_or(Fence {
                holder: self.holder.clone(),
                epoch,
            });
            return Ok(Role::Leader(fence));
        }
        // Someone else wrote first: follow, watching from now.
        self.follow(None);
        let lease = ledger.read_lease(&self.cluster).await?;
        if let Some(l) = &lease {
            self.follow(Some((l.version.clone(), Instant::now())));
        }
        Ok(Role::Follower(lease.map(|l| Fence {
            holder: l.holder,
            epoch: l.epoch,
        })))
    }

    /// Writes the lease as ours at `epoch`, conditional on `expected`; on success this replica leads until
    /// `sent + duration − margin`.
    async fn write<L: Ledger>(
        &mut self,
        ledger: &L,
        epoch: u64,
        expected: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let version = new_version();
        let record = LeaseRecord {
            holder: self.holder.clone(),
            epoch,
            version: version.clone(),
            duration_ms: u64::try_from(self.config.duration.as_millis()).unwrap_or(u64::MAX),
            renewed_at: now,
            released: false,
            policy: self.policy.clone(),
        };
        let sent = Instant::now();
        if !ledger.write_lease(&self.cluster, &record, expected).await? {
            return Ok(false);
        }
        self.recorded.clone_from(&self.policy);
        let fence = Fence {
            holder: self.holder.clone(),
            epoch,
        };
        let valid_until = sent + self.config.duration.saturating_sub(self.config.margin);
        self.view.set(Some((fence.clone(), valid_until)));
        self.state = State::Leading {
            fence,
            version,
            valid_until,
        };
        Ok(true)
    }

    /// Gives the lease up (clean shutdown), so a follower may take over at once. Stops acting first.
    pub async fn release<L: Ledger>(&mut self, ledger: &L, now: DateTime<Utc>) -> Result<(), LedgerError> {
        let State::Leading { fence, version, .. } = &self.state else {
            return Ok(());
        };
        let record = LeaseRecord {
            holder: fence.holder.clone(),
            epoch: fence.epoch,
            version: new_version(),
            duration_ms: u64::try_from(self.config.duration.as_millis()).unwrap_or(u64::MAX),
            renewed_at: now,
            released: true,
            policy: self.policy.clone(),
        };
        let version = version.clone();
        self.follow(None);
        ledger.write_lease(&self.cluster, &record, Some(&version)).await?;
        Ok(())
    }
}

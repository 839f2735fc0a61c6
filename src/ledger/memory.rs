//! The in-memory ledger: the same protocol as the DynamoDB one, for the twin, `simulate`, `demo` and tests.
//! Expiry is checked on every read, as the DynamoDB ledger checks it in every condition.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{ActionRecord, ActionState, Claim, CooldownTarget, EpisodeRecord, Fence, LeaseRecord, Ledger, LedgerError};

#[derive(Default)]
struct Tables {
    /// (cluster, id) → record.
    actions: BTreeMap<(String, String), ActionRecord>,
    cooldowns: Vec<(String, CooldownTarget, DateTime<Utc>)>,
    leases: BTreeMap<String, LeaseRecord>,
    episodes: BTreeMap<String, EpisodeRecord>,
}

impl Tables {
    /// Whether the cluster's lease names the fence's holder and epoch and is not released (what a fenced write
    /// checks in the same transaction in DynamoDB).
    fn fence_holds(&self, cluster: &str, fence: &Fence) -> Result<(), LedgerError> {
        let holds = self
            .leases
            .get(cluster)
            .is_some_and(|l| l.holder == fence.holder && l.epoch == fence.epoch && !l.released);
        if holds {
            Ok(())
        } else {
            Err(LedgerError::Fenced {
                holder: fence.holder.clone(),
                epoch: fence.epoch,
            })
        }
    }
}

/// A ledger that lives as long as the process.
#[derive(Default)]
pub struct MemoryLedger {
    tables: Mutex<Tables>,
}

impl MemoryLedger {
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every record, in id order (for reports and tests).
    pub fn all(&self) -> Vec<ActionRecord> {
        self.lock().actions.values().cloned().collect()
    }
}

impl Ledger for MemoryLedger {
    async fn claim(&self, record: ActionRecord, fence: Option<&Fence>) -> Result<Claim, LedgerError> {
        let mut t = self.lock();
        if let Some(f) = fence {
            t.fence_holds(&record.cluster, f)?;
        }
        let key = (record.cluster.clone(), record.id.clone());
        if let Some(existing) = t.actions.get(&key) {
            if existing.token == record.token {
                return Ok(Claim::Claimed);
            }
            return Ok(Claim::AlreadyClaimed(Box::new(existing.clone())));
        }
        t.actions.insert(key, record);
        Ok(Claim::Claimed)
    }

    async fn update(
        &self,
        cluster: &str,
        id: &str,
        state: ActionState,
        outcome: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let mut t = self.lock();
        let r = t
            .actions
            .get_mut(&(cluster.to_owned(), id.to_owned()))
            .ok_or_else(|| LedgerError::NotFound(id.to_owned()))?;
        if !state.may_follow(r.state) {
            return Ok(false);
        }
        r.state = state;
        r.updated_at = now;
        if outcome.is_some() {
            r.outcome = outcome;
        }
        Ok(true)
    }

    async fn in_flight(&self, cluster: &str) -> Result<Vec<ActionRecord>, LedgerError> {
        Ok(self
            .lock()
            .actions
            .values()
            .filter(|r| r.cluster == cluster && r.state.in_flight())
            .cloned()
            .collect())
    }

    async fn since(&self, cluster: &str, since: DateTime<Utc>) -> Result<Vec<ActionRecord>, LedgerError> {
        Ok(self
            .lock()
            .actions
            .values()
            .filter(|r| r.cluster == cluster && r.claimed_at > since)
            .cloned()
            .collect())
    }

    async fn set_cooldown(
        &self,
        cluster: &str,
        target: CooldownTarget,
        until: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut t = self.lock();
        t.cooldowns.retain(|(c, x, _)| !(c == cluster && *x == target));
        t.cooldowns.push((cluster.to_owned(), target, until));
        Ok(())
    }

    async fn cooldowns(
        &self,
        cluster: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CooldownTarget, DateTime<Utc>)>, LedgerError> {
        Ok(self
            .lock()
            .cooldowns
            .iter()
            .filter(|(c, _, until)| c == cluster && *until > now)
            .map(|(_, t, until)| (t.clone(), *until))
            .collect())
    }

    async fn read_episode(&self, cluster: &str) -> Result<Option<EpisodeRecord>, LedgerError> {
        Ok(self.lock().episodes.get(cluster).cloned())
    }

    async fn write_episode(
        &self,
        cluster: &str,
        episode: &EpisodeRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        let mut t = self.lock();
        if let Some(f) = fence {
            t.fence_holds(cluster, f)?;
        }
        t.episodes.insert(cluster.to_owned(), episode.clone());
        Ok(())
    }

    async fn read_lease(&self, cluster: &str) -> Result<Option<LeaseRecord>, LedgerError> {
        Ok(self.lock().leases.get(cluster).cloned())
    }

    async fn write_lease(
        &self,
        cluster: &str,
        lease: &LeaseRecord,
        expected_version: Option<&str>,
    ) -> Result<bool, LedgerError> {
        let mut t = self.lock();
        if t.leases.get(cluster).map(|l| l.version.as_str()) != expected_version {
            return Ok(false);
        }
        t.leases.insert(cluster.to_owned(), lease.clone());
        Ok(true)
    }
}

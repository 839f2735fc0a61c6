//! The in-memory ledger: the same protocol as the DynamoDB one, for the twin, `simulate`, `demo` and tests.
//! Expiry is checked on every read, as the DynamoDB ledger checks it in every condition. Records are kept typed;
//! a test can also put a raw item in it ([`MemoryLedger::put_item`]), damaged or not, which is read through the same
//! mapping as the DynamoDB ledger's items.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{
    item, ActionLog, ActionRecord, ActionState, Claim, CooldownTarget, EpisodeRecord, Fence, LeaseRecord, Ledger,
    LedgerError,
};

#[derive(Default)]
struct Tables {
    /// (cluster, id) → record.
    actions: BTreeMap<(String, String), ActionRecord>,
    /// (cluster, id) → an item a test put that cannot be read, read again on every read.
    items: BTreeMap<(String, String), serde_dynamo::Item>,
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

    /// The cluster's actions claimed after `since`, and its items that cannot be read.
    fn log(&self, cluster: &str, since: DateTime<Utc>) -> ActionLog {
        let records = self
            .actions
            .values()
            .filter(|r| r.cluster == cluster && r.claimed_at > since);
        let raw = self.items.iter().filter(|((c, _), _)| c == cluster);
        ActionLog {
            records: records.cloned().collect(),
            unreadable: raw.filter_map(|(_, i)| item::read(i.clone()).err()).collect(),
        }
    }

    /// The error an item that cannot be read answers every write of its id with.
    fn unreadable(&self, cluster: &str, id: &str) -> Option<LedgerError> {
        let raw = self.items.get(&(cluster.to_owned(), id.to_owned()))?;
        item::read(raw.clone())
            .err()
            .map(|u| LedgerError::Unreadable(Box::new(u)))
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

    /// Puts an action item as a DynamoDB table would hold it (`id`, `kind`, `target`, … as docs/operations.md lists
    /// them), in place of any record of that id, read through the DynamoDB ledger's mapping: for tests of a
    /// damaged ledger. An item that cannot be read stays as it is, and every read reports it.
    pub fn put_item(&self, cluster: &str, id: &str, raw: serde_dynamo::Item) {
        let mut t = self.lock();
        let key = (cluster.to_owned(), id.to_owned());
        t.actions.remove(&key);
        t.items.remove(&key);
        match item::read(raw.clone()) {
            Ok(record) => t.actions.insert(key, record).map(|_| ()),
            Err(_) => t.items.insert(key, raw).map(|_| ()),
        };
    }
}

impl Ledger for MemoryLedger {
    async fn claim(&self, record: ActionRecord, fence: Option<&Fence>) -> Result<Claim, LedgerError> {
        item::fitting_item(&record)?;
        let mut t = self.lock();
        if let Some(f) = fence {
            t.fence_holds(&record.cluster, f)?;
        }
        let key = (record.cluster.clone(), record.id.clone());
        if let Some(e) = t.unreadable(&record.cluster, &record.id) {
            return Err(e);
        }
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
        if let Some(e) = t.unreadable(cluster, id) {
            return Err(e);
        }
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
        let mut records = self.lock().log(cluster, DateTime::<Utc>::MIN_UTC).into_records()?;
        records.retain(|r| r.state.in_flight());
        Ok(records)
    }

    async fn since(&self, cluster: &str, since: DateTime<Utc>) -> Result<Vec<ActionRecord>, LedgerError> {
        self.lock().log(cluster, since).into_records()
    }

    async fn read_actions(&self, cluster: &str, since: DateTime<Utc>) -> Result<ActionLog, LedgerError> {
        Ok(self.lock().log(cluster, since))
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

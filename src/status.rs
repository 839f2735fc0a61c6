//! `status`: what the ledger says about a cluster, as a person reads it: the leader and its epoch, the policy
//! revision it acts under (and the last one refused as invalid), actions in flight and recent ones (each with the
//! revision it was planned under) (reason, predicted landing, what really happened), action items that cannot be read, and
//! cooldowns.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ledger::{ActionLog, ActionRecord, CooldownTarget, LeaseRecord, PolicyRecord, Unreadable};
use crate::moves::LANDING_SHOWN;

/// A cluster's status at `now`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub cluster: String,
    pub now: DateTime<Utc>,
    pub leader: Option<Leader>,
    /// The policy the leader acts under, as its lease records it (with the last revision refused as invalid).
    pub policy: Option<PolicyRecord>,
    /// Claimed or acting.
    pub in_flight: Vec<ActionRecord>,
    /// Finished since the window's start, newest first.
    pub recent: Vec<ActionRecord>,
    /// Action items that cannot be read, whenever they were written: the controller leaves what each names alone
    /// (or plans nothing at all when one names nothing) until it is repaired or deleted.
    pub unreadable: Vec<Unreadable>,
    pub cooldowns: Vec<Cooldown>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leader {
    pub holder: String,
    pub epoch: u64,
    pub renewed_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub released: bool,
    /// By wall clocks, for people only: renewed within its duration and not released.
    pub apparently_fresh: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cooldown {
    /// `service#NAME` or `instance#ARN`.
    pub target: String,
    pub until: DateTime<Utc>,
}

impl Status {
    /// Sorts what the ledger returned into a status; `actions` are every action of the window and every action
    /// item that cannot be read.
    pub fn new(
        cluster: &str,
        now: DateTime<Utc>,
        lease: Option<LeaseRecord>,
        actions: ActionLog,
        cooldowns: Vec<(CooldownTarget, DateTime<Utc>)>,
    ) -> Status {
        let policy = lease.as_ref().and_then(|l| l.policy.clone());
        let leader = lease.map(|l| {
            let age = now - l.renewed_at;
            let duration = chrono::Duration::milliseconds(i64::try_from(l.duration_ms).unwrap_or(i64::MAX));
            Leader {
                apparently_fresh: !l.released && age <= duration,
                holder: l.holder,
                epoch: l.epoch,
                renewed_at: l.renewed_at,
                duration_ms: l.duration_ms,
                released: l.released,
            }
        });
        let (mut in_flight, mut recent): (Vec<_>, Vec<_>) =
            actions.records.into_iter().partition(|a| a.state.in_flight());
        let mut unreadable = actions.unreadable;
        unreadable.sort_by(|a, b| a.key.cmp(&b.key));
        in_flight.sort_by(|a, b| b.claimed_at.cmp(&a.claimed_at).then_with(|| a.id.cmp(&b.id)));
        recent.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
        let mut cooldowns: Vec<Cooldown> = cooldowns
            .into_iter()
            .map(|(t, until)| Cooldown { target: t.key(), until })
            .collect();
        cooldowns.sort_by(|a, b| a.until.cmp(&b.until).then_with(|| a.target.cmp(&b.target)));
        Status {
            cluster: cluster.to_owned(),
            now,
            leader,
            policy,
            in_flight,
            recent,
            unreadable,
            cooldowns,
        }
    }

    /// The table a person reads.
    pub fn to_table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let ago = |t: DateTime<Utc>| {
            let s = (self.now - t).num_seconds();
            match s {
                s if s < 120 => format!("{s}s ago"),
                s if s < 7200 => format!("{}m ago", s / 60),
                s => format!("{}h ago", s / 3600),
            }
        };
        let _ = writeln!(out, "cluster {}", self.cluster);
        match &self.leader {
            None => {
                let _ = writeln!(
                    out,
                    "leader: none (no replica has run for cluster {} against this table; is the cluster name right?)",
                    self.cluster
                );
            }
            Some(l) => {
                let state = match (l.released, l.apparently_fresh) {
                    (true, _) => "released",
                    (false, true) => "holding",
                    (false, false) => "silent (a follower takes over after one lease)",
                };
                let _ = writeln!(
                    out,
                    "leader: {} epoch {} ({state}; renewed {})",
                    l.holder,
                    l.epoch,
                    ago(l.renewed_at)
                );
            }
        }
        match &self.policy {
            None => {
                let _ = writeln!(out, "policy: not recorded");
            }
            Some(p) => {
                let applied = p
                    .applied_at
                    .map_or_else(String::new, |t| format!(", applied {}", ago(t)));
                let _ = writeln!(
                    out,
                    "policy: {} at revision {} ({}{applied})",
                    p.name, p.revision, p.source
                );
                if let Some(r) = &p.rejected {
                    let at = r.at.map_or_else(String::new, |t| format!(" {}", ago(t)));
                    let _ = writeln!(
                        out,
                        "  refused{at}: revision {} is invalid; the revision above stays in force",
                        r.revision
                    );
                    for e in &r.errors {
                        let _ = writeln!(out, "    {e}");
                    }
                }
            }
        }
        let action = |out: &mut String, a: &ActionRecord| {
            let _ = writeln!(
                out,
                "  {:<9} {:<48} claimed {} epoch {}",
                a.state.as_str(),
                a.id,
                ago(a.claimed_at),
                a.epoch
            );
            let _ = writeln!(
                out,
                "            why: {} (predicted gain {:.3})",
                a.reason, a.predicted_gain
            );
            if !a.predicted_landing.is_empty() {
                // Instance ids, as `once` shows them; `-o json` has the ARNs.
                let landing = a
                    .predicted_landing
                    .describe(LANDING_SHOWN, |arn| arn.rsplit('/').next().unwrap_or(arn).to_owned());
                let _ = writeln!(out, "            predicted landing: {landing}");
            }
            if let Some(o) = &a.outcome {
                let _ = writeln!(out, "            outcome: {o}");
            }
            if !a.policy_revision.is_empty() {
                let _ = writeln!(
                    out,
                    "            policy: {} at revision {}",
                    a.policy_name, a.policy_revision
                );
            }
        };
        let _ = writeln!(out, "in flight: {}", self.in_flight.len());
        for a in &self.in_flight {
            action(&mut out, a);
        }
        let _ = writeln!(out, "recent: {}", self.recent.len());
        for a in &self.recent {
            action(&mut out, a);
        }
        if !self.unreadable.is_empty() {
            let _ = writeln!(
                out,
                "unreadable: {} (what each names is left alone until it is repaired or deleted)",
                self.unreadable.len()
            );
        }
        for u in &self.unreadable {
            let names = if u.targets.is_empty() {
                "names nothing: no move is planned at all".to_owned()
            } else {
                format!("names {}", u.targets.join(", "))
            };
            let state = u.state.map_or("state unknown", |s| s.as_str());
            let _ = writeln!(out, "  {:<9} {} {names}", state, u.key);
            let _ = writeln!(out, "            why: {}", u.cause());
        }
        let _ = writeln!(out, "cooldowns: {}", self.cooldowns.len());
        for c in &self.cooldowns {
            let left = (c.until - self.now).num_seconds().max(0);
            let _ = writeln!(out, "  {} for {}m{:02}s", c.target, left / 60, left % 60);
        }
        out
    }
}

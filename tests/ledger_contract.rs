//! One test suite, two ledgers: every behaviour the controller relies on, run against the in-memory ledger and
//! against the DynamoDB ledger on `moto_server` (real conditional writes, transactions and
//! `ReturnValuesOnConditionCheckFailure`). A behaviour that holds for one and not the other fails here.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use chrono::{DateTime, Utc};

use ecs_rebalancer::ledger::dynamo::{create_table, DynamoLedger, TableSetup};
use ecs_rebalancer::ledger::lease::{Elector, LeaseConfig, Role};
use ecs_rebalancer::ledger::memory::MemoryLedger;
use ecs_rebalancer::ledger::{
    ActionRecord, ActionState, Claim, CooldownTarget, EpisodeRecord, Fence, ItemError, LeaseRecord, Ledger,
    LedgerError, PolicyRecord, RejectedRevision,
};
use ecs_rebalancer::moves::{InstanceSet, Move};

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
}

/// A stop's record; its task is the one its id (`stop-task:<task>`) names, as the ledger reads it back.
fn record(cluster: &str, id: &str, token: &str, minute: i64) -> ActionRecord {
    let task = id.split(':').nth(1).unwrap_or(id);
    ActionRecord {
        id: id.into(),
        cluster: cluster.into(),
        mv: Move::StopTask {
            task_arn: format!("arn:aws:ecs:eu-west-1:111122223333:task/{cluster}/{task}"),
            service_name: "web".into(),
            container_instance_arn: "arn:aws:ecs:eu-west-1:111122223333:container-instance/c/hot".into(),
        },
        deployment_before: None,
        state: ActionState::Claimed,
        claimed_at: at(minute),
        updated_at: at(minute),
        reason: "hot: 0.9 → 0.5".into(),
        predicted_landing: InstanceSet::listed(vec!["cold1".into(), "cold2".into()]),
        improving_landing: InstanceSet::listed(vec!["cold1".into()]),
        seen_until: Some(at(minute)),
        predicted_gain: 0.125,
        tasks: 1,
        outcome: None,
        holder: String::new(),
        epoch: 0,
        token: token.into(),
        policy_revision: format!("sha256:{minute}"),
        policy_name: "prod".into(),
    }
}

async fn claim_records_once_and_knows_its_own_retry(l: &impl Ledger) {
    let first = record("c", "stop-task:a", "t1", 0);
    assert_eq!(l.claim(first.clone(), None).await.unwrap(), Claim::Claimed);
    assert_eq!(
        l.claim(first.clone(), None).await.unwrap(),
        Claim::Claimed,
        "the same attempt, retried: ours"
    );
    match l.claim(record("c", "stop-task:a", "t2", 1), None).await.unwrap() {
        Claim::AlreadyClaimed(existing) => assert_eq!(*existing, first, "the blocking record, whole"),
        other => panic!("a second attempt must not claim again: {other:?}"),
    }
    assert_eq!(
        l.in_flight("c").await.unwrap(),
        vec![first],
        "every field survives the round trip"
    );
    assert!(l.in_flight("other").await.unwrap().is_empty(), "clusters are apart");
}

/// Each kind keeps what it acts on and what settling it needs (a stop's odds, a redeploy's deployment, a drain's
/// tasks).
async fn every_kind_of_move_survives_the_round_trip(l: &impl Ledger) {
    let redeploy = ActionRecord {
        id: "redeploy-service:web:1".into(),
        mv: Move::RedeployService {
            service_name: "web".into(),
        },
        deployment_before: Some("ecs-svc/1".into()),
        ..record("c", "redeploy-service:web:1", "t", 1)
    };
    let drain = ActionRecord {
        id: "drain-instance:hot:7".into(),
        mv: Move::DrainInstance {
            container_instance_arn: "arn:aws:ecs:eu-west-1:111122223333:container-instance/c/hot".into(),
            moved_tasks: vec!["task-a".into(), "task-b".into()],
            moved_services: vec!["api".into(), "web".into()],
        },
        predicted_landing: InstanceSet::default(),
        improving_landing: InstanceSet::default(),
        seen_until: None,
        ..record("c", "drain-instance:hot:7", "t", 2)
    };
    let stop = record("c", "stop-task:a", "t", 0);
    for r in [&stop, &redeploy, &drain] {
        assert_eq!(l.claim(r.clone(), None).await.unwrap(), Claim::Claimed);
    }
    let mut all = l.in_flight("c").await.unwrap();
    all.sort_by_key(|r| r.claimed_at);
    assert_eq!(all, vec![stop, redeploy, drain]);
}

async fn states_move_forward_only(l: &impl Ledger) {
    l.claim(record("c", "stop-task:x", "t", 0), None).await.unwrap();
    assert!(l
        .update("c", "stop-task:x", ActionState::Acting, None, at(1))
        .await
        .unwrap());
    assert!(
        !l.update("c", "stop-task:x", ActionState::Acting, None, at(2))
            .await
            .unwrap(),
        "acting twice"
    );
    assert!(
        !l.update("c", "stop-task:x", ActionState::Claimed, None, at(2))
            .await
            .unwrap(),
        "never back"
    );
    assert!(l
        .update(
            "c",
            "stop-task:x",
            ActionState::Done,
            Some("landed on cold1".into()),
            at(3)
        )
        .await
        .unwrap());
    assert!(
        !l.update("c", "stop-task:x", ActionState::Failed, Some("late".into()), at(4))
            .await
            .unwrap(),
        "ends are final: a second settler loses"
    );
    assert!(l.in_flight("c").await.unwrap().is_empty());
    let all = l.since("c", at(-1)).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, ActionState::Done);
    assert_eq!(all[0].outcome.as_deref(), Some("landed on cold1"));
    assert_eq!(all[0].updated_at, at(3));
    let e = l.update("c", "nope", ActionState::Done, None, at(5)).await.unwrap_err();
    assert!(matches!(e, LedgerError::NotFound(_)), "{e:?}");
}

async fn since_filters_by_claim_time(l: &impl Ledger) {
    for m in 0..5 {
        l.claim(record("c", &format!("stop-task:a{m}"), "t", m * 20), None)
            .await
            .unwrap();
    }
    let recent: Vec<String> = l.since("c", at(30)).await.unwrap().into_iter().map(|r| r.id).collect();
    let mut recent = recent;
    recent.sort();
    assert_eq!(recent, ["stop-task:a2", "stop-task:a3", "stop-task:a4"]);
}

async fn cooldowns_expire_on_read_and_are_replaced(l: &impl Ledger) {
    let svc = CooldownTarget::Service("web".into());
    let inst = CooldownTarget::Instance("arn:aws:ecs:eu-west-1:1:container-instance/c/i-1".into());
    l.set_cooldown("c", svc.clone(), at(10)).await.unwrap();
    l.set_cooldown("c", inst.clone(), at(5)).await.unwrap();
    let mut now = l.cooldowns("c", at(0)).await.unwrap();
    now.sort_by_key(|(_, until)| *until);
    assert_eq!(now, vec![(inst.clone(), at(5)), (svc.clone(), at(10))]);
    assert_eq!(
        l.cooldowns("c", at(7)).await.unwrap(),
        vec![(svc.clone(), at(10))],
        "expiry is compared"
    );
    l.set_cooldown("c", svc.clone(), at(20)).await.unwrap();
    assert_eq!(
        l.cooldowns("c", at(15)).await.unwrap(),
        vec![(svc, at(20))],
        "one per target"
    );
    assert!(l.cooldowns("other", at(0)).await.unwrap().is_empty());
}

fn lease(holder: &str, epoch: u64, version: &str, released: bool) -> LeaseRecord {
    LeaseRecord {
        holder: holder.into(),
        epoch,
        version: version.into(),
        duration_ms: 30_000,
        renewed_at: at(0),
        released,
        policy: Some(PolicyRecord {
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            name: "prod".into(),
            source: "git+https://git.example.com/ops/policies.git?ref=main&path=policies".into(),
            applied_at: Some(at(0)),
            rejected: Some(RejectedRevision {
                revision: "89abcdef0123456789abcdef0123456789abcdef".into(),
                errors: vec!["policies/prod.yaml:4:3: spec: unknown field metrik".into()],
                at: Some(at(1)),
            }),
        }),
    }
}

async fn the_lease_is_a_compare_and_swap_on_its_version(l: &impl Ledger) {
    assert_eq!(l.read_lease("c").await.unwrap(), None);
    assert!(l.write_lease("c", &lease("a", 1, "v1", false), None).await.unwrap());
    assert!(
        !l.write_lease("c", &lease("b", 1, "v9", false), None).await.unwrap(),
        "exists"
    );
    assert!(
        !l.write_lease("c", &lease("b", 2, "v9", false), Some("v0"))
            .await
            .unwrap(),
        "stale version"
    );
    assert!(l
        .write_lease("c", &lease("a", 1, "v2", false), Some("v1"))
        .await
        .unwrap());
    assert_eq!(l.read_lease("c").await.unwrap(), Some(lease("a", 1, "v2", false)));
}

async fn claims_under_a_lease_are_fenced_by_holder_and_epoch(l: &impl Ledger) {
    let fence = |holder: &str, epoch| Fence {
        holder: holder.into(),
        epoch,
    };
    let e = l
        .claim(record("c", "stop-task:x0", "t", 0), Some(&fence("a", 1)))
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::Fenced { .. }), "no lease at all: {e:?}");
    l.write_lease("c", &lease("a", 1, "v1", false), None).await.unwrap();
    assert_eq!(
        l.claim(record("c", "stop-task:x1", "t", 0), Some(&fence("a", 1)))
            .await
            .unwrap(),
        Claim::Claimed
    );
    for wrong in [fence("a", 0), fence("b", 1), fence("a", 2)] {
        let e = l
            .claim(record("c", "stop-task:x2", "t", 0), Some(&wrong))
            .await
            .unwrap_err();
        assert!(matches!(e, LedgerError::Fenced { .. }), "{wrong:?}: {e:?}");
    }
    // Taken over at epoch 2: the old holder's claims are refused, nothing of them is written.
    l.write_lease("c", &lease("b", 2, "v2", false), Some("v1"))
        .await
        .unwrap();
    assert!(l
        .claim(record("c", "stop-task:x3", "t", 0), Some(&fence("a", 1)))
        .await
        .is_err());
    // Released: nobody claims under it.
    l.write_lease("c", &lease("b", 2, "v3", true), Some("v2"))
        .await
        .unwrap();
    assert!(l
        .claim(record("c", "stop-task:x4", "t", 0), Some(&fence("b", 2)))
        .await
        .is_err());
    let ids: Vec<String> = l.since("c", at(-1)).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["stop-task:x1"]);
}

/// Two replicas: the first leads and renews; the second never leads while renewals come, takes over only after a
/// whole lease of silence on its own clock, at a higher epoch; the deposed one can no longer claim.
async fn a_follower_takes_over_only_after_a_full_lease_of_silence(l: &impl Ledger) {
    let config = LeaseConfig::new(Duration::from_millis(900));
    let mut a = Elector::new("c", "replica-a", config);
    let mut b = Elector::new("c", "replica-b", config);
    let Role::Leader(fence_a) = a.step(l, at(0)).await.unwrap() else {
        panic!("the first replica leads an empty table")
    };
    assert_eq!(fence_a.epoch, 1);
    assert_eq!(a.view().fence(), Some(fence_a.clone()));
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2000) {
        assert!(
            matches!(b.step(l, at(0)).await.unwrap(), Role::Follower(Some(_))),
            "renewed: b follows"
        );
        assert!(matches!(a.step(l, at(0)).await.unwrap(), Role::Leader(_)));
        tokio::time::sleep(config.renew_every).await;
    }
    // a goes silent (a crash, a pause). b sees the same version for a whole lease before taking over.
    let silent = tokio::time::Instant::now();
    let fence_b = loop {
        if let Role::Leader(f) = b.step(l, at(0)).await.unwrap() {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        silent.elapsed() >= config.duration,
        "took over after {:?}",
        silent.elapsed()
    );
    assert_eq!(fence_b.epoch, 2, "every takeover raises the epoch");
    assert_eq!(a.view().fence(), None, "a's own clock already told it to stop acting");
    let e = l
        .claim(record("c", "stop-task:late", "t", 0), Some(&fence_a))
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::Fenced { .. }), "{e:?}");
    assert!(
        matches!(a.step(l, at(0)).await.unwrap(), Role::Follower(_)),
        "a finds out and follows"
    );
    assert_eq!(
        l.claim(record("c", "stop-task:fresh", "t", 0), Some(&fence_b))
            .await
            .unwrap(),
        Claim::Claimed
    );
}

async fn a_released_lease_is_taken_at_once(l: &impl Ledger) {
    let config = LeaseConfig::new(Duration::from_secs(60));
    let mut a = Elector::new("c", "replica-a", config);
    let mut b = Elector::new("c", "replica-b", config);
    assert!(matches!(a.step(l, at(0)).await.unwrap(), Role::Leader(_)));
    assert!(matches!(b.step(l, at(0)).await.unwrap(), Role::Follower(_)));
    a.release(l, at(0)).await.unwrap();
    assert_eq!(a.view().fence(), None);
    match b.step(l, at(0)).await.unwrap() {
        Role::Leader(f) => assert_eq!(f.epoch, 2),
        other => panic!("a released lease is free: {other:?}"),
    }
}

/// A renewal whose answer was lost still changed the version: the holder recognises its own write and keeps
/// leading at the same epoch instead of deposing itself.
async fn a_holder_recognises_its_own_renewal(l: &impl Ledger) {
    let config = LeaseConfig::new(Duration::from_secs(60));
    let mut a = Elector::new("c", "replica-a", config);
    assert!(matches!(a.step(l, at(0)).await.unwrap(), Role::Leader(_)));
    // What a's lost renewal did: the same holder and epoch at a version a never learnt.
    let mut current = l.read_lease("c").await.unwrap().unwrap();
    let old = current.version.clone();
    current.version = "written-but-unanswered".into();
    assert!(l.write_lease("c", &current, Some(&old)).await.unwrap());
    match a.step(l, at(1)).await.unwrap() {
        Role::Leader(f) => assert_eq!(f.epoch, 1),
        other => panic!("{other:?}"),
    }
}

/// Replicas with different lease durations (mid-rollout): a follower with a short lease still waits out the
/// holder's longer promise, so the two are never both fresh.
async fn a_follower_waits_out_the_holders_longer_lease(l: &impl Ledger) {
    let mut a = Elector::new("c", "replica-a", LeaseConfig::new(Duration::from_secs(3)));
    let mut b = Elector::new("c", "replica-b", LeaseConfig::new(Duration::from_millis(300)));
    assert!(matches!(a.step(l, at(0)).await.unwrap(), Role::Leader(_)));
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_millis(1200) {
        assert!(
            matches!(b.step(l, at(0)).await.unwrap(), Role::Follower(_)),
            "a's lease still holds"
        );
        assert!(a.view().fence().is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The rebalancing episode is one item per cluster, written under the fence: a write under a lease the writer no
/// longer holds (taken over, released, never taken) is refused and changes nothing; without a lease (`simulate`) it
/// is a plain write.
async fn the_episode_is_written_under_the_fence(l: &impl Ledger) {
    let fence = |holder: &str, epoch| Fence {
        holder: holder.into(),
        epoch,
    };
    let on = EpisodeRecord {
        active: true,
        started_at: Some(at(0)),
    };
    let off = EpisodeRecord::default();
    assert_eq!(l.read_episode("c").await.unwrap(), None);
    let e = l.write_episode("c", &on, Some(&fence("a", 1))).await.unwrap_err();
    assert!(matches!(e, LedgerError::Fenced { .. }), "no lease at all: {e:?}");
    assert_eq!(l.read_episode("c").await.unwrap(), None, "nothing written");

    l.write_lease("c", &lease("a", 1, "v1", false), None).await.unwrap();
    l.write_episode("c", &on, Some(&fence("a", 1))).await.unwrap();
    assert_eq!(l.read_episode("c").await.unwrap(), Some(on.clone()));
    assert_eq!(l.read_episode("other").await.unwrap(), None, "clusters are apart");

    // Taken over at epoch 2: the deposed holder cannot end the episode the new one carries on.
    l.write_lease("c", &lease("b", 2, "v2", false), Some("v1"))
        .await
        .unwrap();
    let e = l.write_episode("c", &off, Some(&fence("a", 1))).await.unwrap_err();
    assert!(matches!(e, LedgerError::Fenced { .. }), "{e:?}");
    assert_eq!(l.read_episode("c").await.unwrap(), Some(on.clone()));
    l.write_episode("c", &off, Some(&fence("b", 2))).await.unwrap();
    assert_eq!(l.read_episode("c").await.unwrap(), Some(off.clone()));

    // Released: nobody writes under it.
    l.write_lease("c", &lease("b", 2, "v3", true), Some("v2"))
        .await
        .unwrap();
    assert!(l.write_episode("c", &on, Some(&fence("b", 2))).await.is_err());
    assert_eq!(l.read_episode("c").await.unwrap(), Some(off));
    // No lease in play (simulate): a plain write.
    l.write_episode("c", &on, None).await.unwrap();
    assert_eq!(l.read_episode("c").await.unwrap(), Some(on));
}

/// ECS's limit of 5,000 instances, with ARNs as long as real ones: a stop whose replacement ties across 4,990 of
/// them, 3,000 of which pay off, is claimed and read back whole (named in full, it would be an item of about 800 KB,
/// twice DynamoDB's limit).
async fn a_stop_tied_across_a_full_cluster_is_claimed(l: &impl Ledger) {
    let arn = |i: usize| format!("arn:aws:ecs:eu-west-1:111122223333:container-instance/production/{i:032x}");
    let cluster: Vec<String> = (0..5_000).map(arn).collect();
    let predicted = &cluster[..4_990];
    let r = ActionRecord {
        predicted_landing: InstanceSet::new(predicted, cluster.iter().map(String::as_str)),
        improving_landing: InstanceSet::new(&cluster[..3_000], predicted.iter().map(String::as_str)),
        ..record("c", "stop-task:wide", "t", 0)
    };
    assert_eq!(l.claim(r.clone(), None).await.unwrap(), Claim::Claimed);
    let back = l.in_flight("c").await.unwrap();
    assert_eq!(back, vec![r]);
    assert!(
        back[0].predicted_landing.contains(&cluster[4_000]) && !back[0].predicted_landing.contains(&cluster[4_995])
    );
}

/// A record named in full across 5,000 instances: an item DynamoDB would refuse. Both ledgers refuse to claim it,
/// naming the action and the size, and nothing is recorded.
async fn a_record_larger_than_an_item_may_be_is_refused_before_it_is_claimed(l: &impl Ledger) {
    let arn = |i: usize| format!("arn:aws:ecs:eu-west-1:111122223333:container-instance/production/{i:032x}");
    let r = ActionRecord {
        predicted_landing: InstanceSet::listed((0..5_000).map(arn).collect()),
        ..record("c", "stop-task:huge", "t", 0)
    };
    match l.claim(r, None).await {
        Err(e @ LedgerError::TooLarge { .. }) => {
            let text = e.to_string();
            assert!(text.contains("stop-task:huge") && text.contains("409600"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(l.in_flight("c").await.unwrap().is_empty());
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&MemoryLedger::new()).await;
                }
            )*
        }
        mod dynamodb {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&dynamo().await).await;
                }
            )*
        }
    };
}

/// A fresh table on this binary's moto server.
async fn dynamo() -> DynamoLedger {
    let conf = ecs_rebalancer::aws::local(&common::moto::endpoint());
    let table = common::moto::unique("ledger");
    create_table(&conf, &table).await.unwrap();
    DynamoLedger::from_conf(&conf, &table)
}

contract!(
    claim_records_once_and_knows_its_own_retry,
    every_kind_of_move_survives_the_round_trip,
    states_move_forward_only,
    since_filters_by_claim_time,
    cooldowns_expire_on_read_and_are_replaced,
    the_lease_is_a_compare_and_swap_on_its_version,
    claims_under_a_lease_are_fenced_by_holder_and_epoch,
    a_follower_takes_over_only_after_a_full_lease_of_silence,
    a_released_lease_is_taken_at_once,
    a_holder_recognises_its_own_renewal,
    a_follower_waits_out_the_holders_longer_lease,
    the_episode_is_written_under_the_fence,
    a_stop_tied_across_a_full_cluster_is_claimed,
    a_record_larger_than_an_item_may_be_is_refused_before_it_is_claimed,
);

/// An action item as a newer version (or a hand edit) might write it: a kind this version does not know.
fn unknown_kind(cluster: &str, id: &str) -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.into());
    let at = at(0).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    HashMap::from([
        ("pk".to_owned(), s(&format!("cluster#{cluster}"))),
        ("sk".to_owned(), s(&format!("action#{id}"))),
        ("id".to_owned(), s(id)),
        ("cluster".to_owned(), s(cluster)),
        ("kind".to_owned(), s("migrate-task")),
        ("target".to_owned(), s("arn:aws:ecs:eu-west-1:111122223333:task/c/abc")),
        ("state".to_owned(), s("claimed")),
        ("claimedAt".to_owned(), s(&at)),
        ("updatedAt".to_owned(), s(&at)),
    ])
}

/// An item that cannot be read is named, never dropped: the controller's read returns it beside the records; the
/// readers that need every record fail naming it; a claim of its id is refused naming it.
async fn an_unreadable_item_is_named_never_dropped(l: &impl Ledger) {
    let good = record("c", "stop-task:a", "t", 0);
    l.claim(good.clone(), None).await.unwrap();
    let log = l.read_actions("c", at(-1)).await.unwrap();
    assert_eq!(log.records, vec![good]);
    assert_eq!(log.unreadable.len(), 1, "{log:?}");
    let bad = &log.unreadable[0];
    assert_eq!(bad.key, "action#migrate-task:abc");
    assert_eq!(bad.source, ItemError::UnknownKind("migrate-task".into()));
    assert_eq!(bad.targets, ["arn:aws:ecs:eu-west-1:111122223333:task/c/abc", "abc"]);
    assert_eq!(bad.state, Some(ActionState::Claimed));
    assert!(
        l.read_actions("c", at(10)).await.unwrap().unreadable.len() == 1,
        "whenever it was claimed: its claim time may be what is damaged"
    );
    for e in [
        l.in_flight("c").await.unwrap_err(),
        l.since("c", at(-1)).await.unwrap_err(),
        l.claim(record("c", "migrate-task:abc", "t", 1), None)
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&e, LedgerError::Unreadable(u) if u.key == "action#migrate-task:abc"),
            "{e:?}"
        );
        assert_eq!(e.label(), "unreadable");
    }
}

#[tokio::test]
async fn memory_an_unreadable_item_is_named_never_dropped() {
    let l = MemoryLedger::new();
    l.put_item("c", "migrate-task:abc", unknown_kind("c", "migrate-task:abc").into());
    an_unreadable_item_is_named_never_dropped(&l).await;
}

#[tokio::test]
async fn dynamodb_an_unreadable_item_is_named_never_dropped() {
    let conf = ecs_rebalancer::aws::local(&common::moto::endpoint());
    let l = dynamo().await;
    aws_sdk_dynamodb::Client::new(&conf)
        .put_item()
        .table_name(l.table())
        .set_item(Some(unknown_kind("c", "migrate-task:abc")))
        .send()
        .await
        .unwrap();
    an_unreadable_item_is_named_never_dropped(&l).await;
    let e = l.actions("c").await.unwrap_err();
    assert!(matches!(e, LedgerError::Unreadable(_)), "{e:?}");
}

/// A lease item that does not map is an error naming it, not "no lease" (which would invite a takeover).
#[tokio::test]
async fn dynamodb_an_unreadable_lease_is_an_error_naming_it() {
    let conf = ecs_rebalancer::aws::local(&common::moto::endpoint());
    let l = dynamo().await;
    aws_sdk_dynamodb::Client::new(&conf)
        .put_item()
        .table_name(l.table())
        .item("pk", AttributeValue::S("cluster#c".into()))
        .item("sk", AttributeValue::S("lease".into()))
        .item("holder", AttributeValue::S("a".into()))
        .item("epoch", AttributeValue::S("one".into()))
        .send()
        .await
        .unwrap();
    let e = l.read_lease("c").await.unwrap_err();
    assert!(matches!(&e, LedgerError::Unreadable(u) if u.key == "lease"), "{e:?}");
}

#[tokio::test]
async fn init_is_idempotent_and_a_missing_table_says_how_to_make_one() {
    let conf = ecs_rebalancer::aws::local(&common::moto::endpoint());
    let table = common::moto::unique("init");
    assert_eq!(create_table(&conf, &table).await.unwrap(), TableSetup::Created);
    assert_eq!(
        create_table(&conf, &table).await.unwrap(),
        TableSetup::AlreadyThere,
        "the same table again: found as it should be, left alone"
    );
    let missing = DynamoLedger::from_conf(&conf, "no-such-table");
    let e = missing.in_flight("c").await.unwrap_err();
    assert!(
        matches!(&e, LedgerError::Table(m) if m.contains("ecs-rebalancer init")),
        "{e:?}"
    );
}

/// A table whose answers never come (a connection cut mid-request, a black-holed endpoint): every ledger call fails
/// within its operation timeout, as unavailable, instead of waiting on the socket. The lease round, and with it the
/// follower's takeover, depends on it.
#[tokio::test]
async fn a_ledger_call_that_is_never_answered_fails_within_its_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket); // accepted, read from by no one, never answered
        }
    });
    let ledger = DynamoLedger::from_conf(&ecs_rebalancer::aws::local(&endpoint), "silent");
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), ledger.in_flight("c"))
        .await
        .expect("the call gave up by itself");
    assert!(matches!(answer, Err(LedgerError::Unavailable(_))), "{answer:?}");
    let waited = started.elapsed();
    assert!(
        waited < ecs_rebalancer::ledger::dynamo::OPERATION_TIMEOUT + Duration::from_secs(2),
        "{waited:?}"
    );
    held.abort();
}

//! The controller under a lease it cannot prove does nothing at all: it claims nothing, sends nothing, and leaves
//! every in-flight action, even an overdue drain, for the leader to settle. An overdue drain recorded failed by a
//! stale replica without its revert to ACTIVE would strand the instance in DRAINING.

use std::time::Duration;

use chrono::Utc;

use ecs_rebalancer::ecs::{EcsApi, InstanceState};
use ecs_rebalancer::ledger::lease::{Elector, LeaseConfig, LeaseView};
use ecs_rebalancer::ledger::memory::MemoryLedger;
use ecs_rebalancer::ledger::{ActionRecord, ActionState, Ledger};
use ecs_rebalancer::model::InstanceStatus;
use ecs_rebalancer::moves::{InstanceSet, Move, MoveKind};
use ecs_rebalancer::reconcile::Controller;
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
use ecs_rebalancer::twin::{Twin, TwinConfig};

const POLICY: &str = "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: p}\nspec:\n  \
                      clusters: [c]\n  metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  mode: enforce\n";

/// A hot instance this controller set DRAINING two hours ago (past the 30-minute deadline), its tasks still on it
/// (the twin's clock does not move here).
async fn overdue_drain() -> (Twin, MemoryLedger) {
    draining_instance(chrono::Duration::hours(2), ActionState::Acting).await
}

/// A hot instance that is DRAINING, and a drain of it claimed `ago`, in `state`.
async fn draining_instance(ago: chrono::Duration, state: ActionState) -> (Twin, MemoryLedger) {
    let twin = Twin::new(
        ClusterBuilder::new("c")
            .instance(instance("hot"))
            .instance(instance("cold"))
            .service(service("web").spread("instanceId").deployment(50, 200))
            .tasks("web", "hot", 4)
            .snapshot(),
        TwinConfig::default(),
    );
    let hot = twin.snapshot().container_instances[0].container_instance_arn.clone();
    twin.set_instance_state(&hot, InstanceState::Draining).await.unwrap();
    let ledger = MemoryLedger::new();
    let claimed = twin.now() - ago;
    let record = ActionRecord {
        id: "drain-instance:hot:1".into(),
        cluster: "c".into(),
        mv: Move::DrainInstance {
            container_instance_arn: hot.clone(),
            moved_tasks: vec![],
            moved_services: vec![],
        },
        deployment_before: None,
        state: ActionState::Claimed,
        claimed_at: claimed,
        updated_at: claimed,
        reason: "hot".into(),
        predicted_landing: InstanceSet::default(),
        improving_landing: InstanceSet::default(),
        seen_until: None,
        predicted_gain: 0.1,
        tasks: 4,
        outcome: None,
        holder: String::new(),
        epoch: 0,
        token: "t".into(),
        policy_revision: String::new(),
        policy_name: String::new(),
    };
    ledger.claim(record, None).await.unwrap();
    if state != ActionState::Claimed {
        assert!(ledger
            .update("c", "drain-instance:hot:1", state, None, claimed)
            .await
            .unwrap());
    }
    (twin, ledger)
}

fn policy() -> ecs_rebalancer::policy::Policy {
    ecs_rebalancer::policy::load_str(std::path::Path::new("p.yaml"), POLICY)
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_replica_without_a_fresh_lease_leaves_an_overdue_drain_alone() {
    let (twin, ledger) = overdue_drain().await;
    // A view no elector ever made fresh: the lease cannot be proven.
    let mut controller = Controller::new(&twin, &ledger, policy(), "c").under_lease(LeaseView::default());
    let report = controller.cycle(twin.now()).await.unwrap();
    assert!(report.acted.is_empty() && report.settled.is_empty(), "{report:?}");
    assert!(
        report
            .not_sent
            .iter()
            .all(|(_, why)| why.contains("lease cannot be proven")),
        "{report:?}"
    );
    let record = &ledger.all()[0];
    assert_eq!(record.state, ActionState::Acting, "left for the leader");
    let status = twin.read(|s| s.container_instances[0].status.clone());
    assert_eq!(status, InstanceStatus::Draining);
    assert_eq!(ledger.all().len(), 1, "nothing claimed");
}

#[tokio::test]
async fn the_leader_reverts_the_overdue_drain_and_records_it_failed() {
    let (twin, ledger) = overdue_drain().await;
    let mut elector = Elector::new("c", "leader", LeaseConfig::new(Duration::from_secs(60)));
    elector.step(&ledger, Utc::now()).await.unwrap();
    let mut controller = Controller::new(&twin, &ledger, policy(), "c").under_lease(elector.view());
    let report = controller.cycle(twin.now()).await.unwrap();
    assert_eq!(report.settled.len(), 1, "{report:?}");
    let record = ledger
        .all()
        .into_iter()
        .find(|r| r.mv.kind() == MoveKind::DrainInstance)
        .unwrap();
    assert_eq!(record.state, ActionState::Failed);
    assert!(record.outcome.unwrap().contains("set ACTIVE again"));
    let status = twin.read(|s| s.container_instances[0].status.clone());
    assert_eq!(status, InstanceStatus::Active, "never stranded in DRAINING");
}

/// A drain ECS never confirmed (the controller died, or lost ECS's answer, between its claim and the reply) on an
/// instance that is DRAINING: that may be someone else's drain (a Spot interruption, a scale-in hook), so the
/// instance is never set ACTIVE, overdue or not, and the record says why and how to undo it by hand.
#[tokio::test]
async fn an_unconfirmed_drain_never_sets_a_draining_instance_active() {
    for ago in [chrono::Duration::minutes(1), chrono::Duration::hours(2)] {
        let (twin, ledger) = draining_instance(ago, ActionState::Claimed).await;
        let mut elector = Elector::new("c", "leader", LeaseConfig::new(Duration::from_secs(60)));
        elector.step(&ledger, Utc::now()).await.unwrap();
        let mut controller = Controller::new(&twin, &ledger, policy(), "c").under_lease(elector.view());
        controller.cycle(twin.now()).await.unwrap();
        let record = ledger
            .all()
            .into_iter()
            .find(|r| r.mv.kind() == MoveKind::DrainInstance)
            .unwrap();
        assert_eq!(record.state, ActionState::Failed, "claimed {ago} ago");
        let outcome = record.outcome.unwrap();
        assert!(
            outcome.contains("someone else's") && outcome.contains("--status ACTIVE"),
            "{outcome}"
        );
        let status = twin.read(|s| s.container_instances[0].status.clone());
        assert_eq!(status, InstanceStatus::Draining, "claimed {ago} ago");
    }
}

/// `run`'s failover: the episode the deposed leader started lives in the ledger, so the new leader carries it on below
/// the trigger, and the deposed one can no longer end it.
#[tokio::test]
async fn a_new_leader_carries_on_the_episode_and_the_deposed_one_cannot_end_it() {
    use ecs_rebalancer::ledger::EpisodeRecord;
    let policy = ecs_rebalancer::policy::load_str(
        std::path::Path::new("p.yaml"),
        &POLICY
            .replace("trigger: 0.2, target: 0.05", "trigger: 0.8, target: 0.1")
            .replace("mode: enforce\n", "mode: enforce\n  budgets: {perCycle: 4, perHour: 100, perService: 100%}\n  cooldown: {instance: 0s, service: 0s}\n"),
    )
    .unwrap()
    .remove(0);
    let twin = Twin::new(
        ClusterBuilder::new("c")
            .instance(instance("hot"))
            .instance(instance("cold1"))
            .instance(instance("cold2"))
            .instance(instance("cold3"))
            .service(service("web").spread("instanceId").deployment(50, 200))
            .tasks("web", "hot", 8)
            .snapshot(),
        TwinConfig::default(),
    );
    let ledger = MemoryLedger::new();
    let config = LeaseConfig::new(Duration::from_secs(60));
    let mut a = Elector::new("c", "a", config);
    a.step(&ledger, Utc::now()).await.unwrap();
    let mut first = Controller::new(&twin, &ledger, policy.clone(), "c").under_lease(a.view());
    let report = first.cycle(twin.now()).await.unwrap();
    assert_eq!(report.acted.len(), 4, "{report:?}");
    assert!(report.plan.episode);
    twin.advance(Duration::from_secs(120));

    // a is gone; b takes over (a released here, as after one lease of silence) with a controller of its own.
    a.release(&ledger, Utc::now()).await.unwrap();
    let mut b = Elector::new("c", "b", config);
    b.step(&ledger, Utc::now()).await.unwrap();
    let mut second = Controller::new(&twin, &ledger, policy, "c").under_lease(b.view());
    let report = second.cycle(twin.now()).await.unwrap();
    assert!(
        report.plan.before.score < 0.8,
        "below the trigger: {}",
        report.plan.summary
    );
    assert_eq!(report.acted.len(), 2, "carried on: {}", report.plan.summary);

    // The deposed leader's fence no longer writes the episode.
    let deposed = ecs_rebalancer::ledger::Fence {
        holder: "a".into(),
        epoch: 1,
    };
    assert!(ledger
        .write_episode("c", &EpisodeRecord::default(), Some(&deposed))
        .await
        .is_err());
    assert!(ledger.read_episode("c").await.unwrap().unwrap().active);
}

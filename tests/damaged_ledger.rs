//! A ledger item that cannot be read is never dropped. A corrupt record of a move in flight that disappeared would
//! make its target plannable again, so the controller leaves what the item names alone, plans nothing at all when it
//! names nothing, and `status` lists it. On the memory ledger (an item put raw, read through the DynamoDB mapping)
//! and on DynamoDB itself (`moto_server`, an item written with the plain SDK).

use crate::common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use ecs_rebalancer::ledger::dynamo::{create_table, DynamoLedger};
use ecs_rebalancer::ledger::memory::MemoryLedger;
use ecs_rebalancer::ledger::{ActionState, Ledger};
use ecs_rebalancer::model::{Cluster, TaskStatus};
use ecs_rebalancer::plan::{self, Episode, LedgerView, Status};
use ecs_rebalancer::reconcile::{Controller, CycleReport};
use ecs_rebalancer::scenarios::builder::{instance, service, ClusterBuilder};
use ecs_rebalancer::twin::{Twin, TwinConfig};

const POLICY: &str = "apiVersion: ecs-rebalancer/v1\nkind: BalancePolicy\nmetadata: {name: p}\nspec:\n  \
                      clusters: [c]\n  metric: count\n  threshold: {trigger: 0.2, target: 0.05}\n  mode: enforce\n  \
                      actions: [stop-tasks]\n  budgets: {maxUnavailable: 4, perService: 100%}\n";

fn policy() -> ecs_rebalancer::policy::Policy {
    ecs_rebalancer::policy::load_str(std::path::Path::new("p.yaml"), POLICY)
        .unwrap()
        .remove(0)
}

/// Six tasks on one instance, none on the other two: stops are due.
fn twin() -> Twin {
    Twin::new(
        ClusterBuilder::new("c")
            .instance(instance("hot"))
            .instance(instance("cold1"))
            .instance(instance("cold2"))
            .service(service("web").spread("instanceId").deployment(50, 200))
            .tasks("web", "hot", 6)
            .snapshot(),
        TwinConfig::default(),
    )
}

/// The task the planner stops first when the ledger is empty: the one a dropped record would leave exposed.
fn first_stop(twin: &Twin) -> String {
    let cluster = Cluster::new(twin.snapshot()).unwrap();
    let p = plan::plan(
        &cluster,
        &policy(),
        &LedgerView::default(),
        twin.now(),
        Episode::default(),
    );
    p.actions[0].mv.task_arn().unwrap().to_owned()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A stop of `task` in flight, as a newer version (or a hand edit) might have written it: a kind this version does
/// not know.
fn damaged_stop(twin: &Twin, task: &str) -> HashMap<String, AttributeValue> {
    let id = format!("stop-task:{}", task.rsplit('/').next().unwrap());
    let hot = twin.snapshot().container_instances[0].container_instance_arn.clone();
    let at = time(twin.now());
    HashMap::from([
        ("pk".to_owned(), s("cluster#c")),
        ("sk".to_owned(), s(&format!("action#{id}"))),
        ("id".to_owned(), s(&id)),
        ("cluster".to_owned(), s("c")),
        ("kind".to_owned(), s("stop-task-v2")),
        ("target".to_owned(), s(task)),
        ("service".to_owned(), s("web")),
        ("instance".to_owned(), s(&hot)),
        ("state".to_owned(), s("acting")),
        ("claimedAt".to_owned(), s(&at)),
        ("updatedAt".to_owned(), s(&at)),
        ("predictedLanding".to_owned(), AttributeValue::L(vec![])),
        ("tasks".to_owned(), AttributeValue::N("1".into())),
    ])
}

fn still_running(twin: &Twin, task: &str) -> bool {
    twin.snapshot()
        .tasks
        .iter()
        .any(|t| t.task_arn == task && t.desired_status != TaskStatus::Stopped)
}

/// What every ledger must show after one cycle over a damaged stop of `task`.
fn assert_left_alone(report: &CycleReport, twin: &Twin, task: &str) {
    let plan = &report.plan;
    assert!(
        plan.actions.iter().all(|a| a.mv.task_arn() != Some(task)),
        "the damaged record's task is planned again: {:#?}",
        plan.actions
    );
    let skip = plan
        .skipped
        .iter()
        .find(|s| s.target == task)
        .expect("skipped, with why");
    assert_eq!(skip.label, "unreadable-record", "{skip:?}");
    assert!(
        skip.reason.contains("action#stop-task:"),
        "names the item: {}",
        skip.reason
    );
    assert!(still_running(twin, task), "never stopped");
    assert!(
        !report.acted.is_empty(),
        "only the damaged record's target halts: {}",
        plan.summary
    );
}

#[tokio::test]
async fn an_unreadable_record_keeps_its_target_out_of_the_plan() {
    let twin = twin();
    let task = first_stop(&twin);
    let ledger = MemoryLedger::new();
    let id = format!("stop-task:{}", task.rsplit('/').next().unwrap());
    ledger.put_item("c", &id, damaged_stop(&twin, &task).into());
    let mut controller = Controller::new(&twin, &ledger, policy(), "c");
    let report = controller.cycle(twin.now()).await.unwrap();
    assert_left_alone(&report, &twin, &task);

    // The next cycle too: the item is there until a person repairs or deletes it.
    twin.advance(std::time::Duration::from_secs(600));
    let report = controller.cycle(twin.now()).await.unwrap();
    assert!(report
        .plan
        .actions
        .iter()
        .all(|a| a.mv.task_arn() != Some(task.as_str())));
    assert!(still_running(&twin, &task));
}

#[tokio::test]
async fn an_unreadable_record_that_names_nothing_stops_all_planning() {
    let twin = twin();
    let ledger = MemoryLedger::new();
    let at = time(twin.now());
    let item = HashMap::from([
        ("pk".to_owned(), s("cluster#c")),
        ("sk".to_owned(), s("action#garbage")),
        ("id".to_owned(), s("garbage")),
        ("claimedAt".to_owned(), s(&at)),
    ]);
    ledger.put_item("c", "garbage", item.into());
    let mut controller = Controller::new(&twin, &ledger, policy(), "c");
    let report = controller.cycle(twin.now()).await.unwrap();
    assert_eq!(report.plan.status, Status::Halted, "{}", report.plan.summary);
    assert!(
        report.plan.summary.contains("action#garbage"),
        "{}",
        report.plan.summary
    );
    assert!(report.plan.actions.is_empty() && report.acted.is_empty(), "{report:?}");
    assert!(
        twin.snapshot()
            .tasks
            .iter()
            .all(|t| t.desired_status != TaskStatus::Stopped),
        "nothing stopped"
    );
}

#[tokio::test]
async fn a_finished_unreadable_record_blocks_nothing_and_status_lists_every_one() {
    let twin = twin();
    let task = first_stop(&twin);
    let ledger = MemoryLedger::new();
    let mut done = damaged_stop(&twin, &task);
    done.insert("state".into(), s("done"));
    ledger.put_item("c", "stop-task:done", done.into());
    let mut controller = Controller::new(&twin, &ledger, policy(), "c");
    let report = controller.cycle(twin.now()).await.unwrap();
    assert!(
        report.plan.skipped.iter().all(|s| s.label != "unreadable-record"),
        "{:?}",
        report.plan.skipped
    );
    assert!(!report.acted.is_empty());

    let log = ledger.read_actions("c", DateTime::<Utc>::MIN_UTC).await.unwrap();
    let status = ecs_rebalancer::status::Status::new("c", twin.now(), None, log, Vec::new());
    assert_eq!(status.unreadable.len(), 1);
    assert_eq!(status.unreadable[0].state, Some(ActionState::Done));
    let table = status.to_table();
    assert!(table.contains("unreadable: 1"), "{table}");
    assert!(
        table.contains("unknown kind \"stop-task-v2\"; this version knows stop-task, redeploy-service, drain-instance"),
        "{table}"
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["unreadable"][0]["state"], "done");
    assert_eq!(json["unreadable"][0]["targets"][0], task.as_str());
}

/// The same on DynamoDB: the item written with the plain SDK, as another version or a hand edit would. Before items
/// that do not map were refused, this record was dropped on read and its task stopped a second time.
#[tokio::test]
async fn dynamodb_an_unreadable_record_keeps_its_target_out_of_the_plan_and_status_shows_it() {
    let conf = ecs_rebalancer::aws::local(&common::moto::endpoint());
    let table = common::moto::unique("damaged");
    create_table(&conf, &table).await.unwrap();
    let ledger = DynamoLedger::from_conf(&conf, &table);
    let twin = twin();
    let task = first_stop(&twin);
    aws_sdk_dynamodb::Client::new(&conf)
        .put_item()
        .table_name(&table)
        .set_item(Some(damaged_stop(&twin, &task)))
        .send()
        .await
        .unwrap();
    let mut controller = Controller::new(&twin, &ledger, policy(), "c");
    let report = controller.cycle(twin.now()).await.unwrap();
    assert_left_alone(&report, &twin, &task);

    let log = ledger.action_log("c").await.unwrap();
    assert_eq!(log.unreadable.len(), 1);
    assert!(!log.records.is_empty(), "the moves that were sent are read as ever");
    let status = ecs_rebalancer::status::Status::new("c", Utc::now(), None, log, Vec::new());
    let table = status.to_table();
    assert!(table.contains(&format!("names {task}")), "{table}");
    assert!(table.contains("unknown kind \"stop-task-v2\""), "{table}");
}

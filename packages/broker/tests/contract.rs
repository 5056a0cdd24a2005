//! The broker contract: every test runs against both adapters, a real Redis
//! (with a key prefix of its own) and the in-process broker.

#![allow(
    clippy::unwrap_used,
    reason = "a test that meets an unexpected None or Err should fail right there"
)]

use std::collections::HashSet;
use std::time::Duration;

use jobwire_broker::{Broker, Outbox, QueueDepth, Selection, SubscriberEvent};
use jobwire_core::{
    JobId, JobType, Priority, QueueEntry, Quota, QuotaOverride, Quotas, Refusal, TenantId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key of a test's prefix when dropped.
struct Purge(String);

impl Drop for Purge {
    fn drop(&mut self) {
        let Ok(client) = ::redis::Client::open(redis_url()) else {
            return;
        };
        if let Ok(mut conn) = client.get_connection() {
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("{}*", self.0))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: ::redis::RedisResult<()> = ::redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

async fn redis() -> (Broker, Option<Purge>) {
    let prefix = format!("broker-test:{}:", uuid::Uuid::new_v4().simple());
    let broker = Broker::redis(&redis_url(), &prefix)
        .await
        .expect("Redis must be running for the tests (see README)");
    (broker, Some(Purge(prefix)))
}

async fn memory() -> (Broker, Option<Purge>) {
    (Broker::memory(), None)
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod redis {
            $( #[tokio::test] async fn $test() { let (broker, _purge) = super::redis().await; super::$test(broker).await } )*
        }
        mod memory {
            $( #[tokio::test] async fn $test() { let (broker, _purge) = super::memory().await; super::$test(broker).await } )*
        }
    };
}

/// A queued `noop` job of tenant `acme`.
fn entry(priority: Priority) -> QueueEntry {
    of("acme", "noop", priority)
}

fn of(tenant: &str, job_type: &str, priority: Priority) -> QueueEntry {
    QueueEntry {
        id: JobId::new(),
        priority,
        tenant: tenant.parse().unwrap(),
        job_type: job_type.parse().unwrap(),
    }
}

fn types(names: &[&str]) -> Vec<JobType> {
    names.iter().map(|name| name.parse().unwrap()).collect()
}

async fn drain(broker: &Broker) -> Vec<JobId> {
    drain_types(broker, &["noop"]).await
}

/// Pops one ID at a time, as a worker running `names` does, until none is left.
async fn drain_types(broker: &Broker, names: &[&str]) -> Vec<JobId> {
    let mut consumer = broker
        .consumer("w1", Duration::from_millis(100), &types(names))
        .await
        .unwrap();
    let mut popped = Vec::new();
    while let Some(id) = consumer.pop().await.unwrap() {
        broker.ack("w1", id).await.unwrap();
        popped.push(id);
    }
    popped
}

async fn higher_priorities_pop_first_and_fifo_within_one(broker: Broker) {
    let jobs: Vec<QueueEntry> = [
        Priority::Low,
        Priority::Default,
        Priority::Critical,
        Priority::High,
        Priority::Low,
        Priority::Critical,
    ]
    .into_iter()
    .map(entry)
    .collect();
    broker.enqueue(&jobs[..3], &[]).await.unwrap();
    broker.enqueue(&jobs[3..], &[]).await.unwrap();
    assert_eq!(broker.queue_len(Priority::Low).await.unwrap(), 2);
    let expected: Vec<JobId> = Priority::ALL
        .iter()
        .flat_map(|p| jobs.iter().filter(move |j| j.priority == *p).map(|j| j.id))
        .collect();
    assert_eq!(drain(&broker).await, expected);
    assert_eq!(broker.queue_len(Priority::Low).await.unwrap(), 0);
}

async fn a_waiting_pop_wakes_when_a_job_arrives(broker: Broker) {
    let mut consumer = broker
        .consumer("w1", Duration::from_secs(5), &types(&["noop"]))
        .await
        .unwrap();
    let queued = entry(Priority::Default);
    let id = queued.id;
    let waiting = tokio::spawn(async move { consumer.pop().await.unwrap() });
    // The consumer may or may not be waiting yet; either way it must get the ID.
    broker.enqueue(&[queued], &[]).await.unwrap();
    let popped = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(popped, Some(id));
}

async fn an_empty_queue_pops_nothing_after_the_block_time(broker: Broker) {
    let mut consumer = broker
        .consumer("w1", Duration::from_millis(100), &types(&["noop"]))
        .await
        .unwrap();
    assert_eq!(consumer.pop().await.unwrap(), None);
}

async fn concurrent_consumers_get_each_id_once(broker: Broker) {
    let jobs: Vec<QueueEntry> = (0..200).map(|_| entry(Priority::Default)).collect();
    broker.enqueue(&jobs, &[]).await.unwrap();
    let mut consumers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let broker = broker.clone();
        consumers.spawn(async move { drain(&broker).await });
    }
    let mut popped = Vec::new();
    while let Some(batch) = consumers.join_next().await {
        popped.extend(batch.unwrap());
    }
    assert_eq!(popped.len(), jobs.len(), "no ID lost, none twice");
    let unique: HashSet<JobId> = popped.into_iter().collect();
    assert_eq!(unique, jobs.iter().map(|j| j.id).collect());
}

/// Starts a subscriber and waits until it is subscribed.
async fn subscriber(
    broker: &Broker,
    cancel: &CancellationToken,
) -> mpsc::UnboundedReceiver<String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (broker, cancel) = (broker.clone(), cancel.clone());
    tokio::spawn(async move {
        broker
            .run_subscriber(cancel, |event| {
                let text = match event {
                    SubscriberEvent::Subscribed => "<subscribed>".to_owned(),
                    SubscriberEvent::Lost => "<lost>".to_owned(),
                    SubscriberEvent::Message(bytes) => String::from_utf8(bytes).unwrap(),
                };
                let _ = tx.send(text);
            })
            .await;
    });
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, "<subscribed>");
    rx
}

async fn every_subscriber_receives_every_update_in_order(broker: Broker) {
    let cancel = CancellationToken::new();
    let mut first = subscriber(&broker, &cancel).await;
    let mut second = subscriber(&broker, &cancel).await;
    let sent: Vec<String> = (0..100).map(|n| format!("{{\"n\":{n}}}")).collect();
    let queued_updates = vec!["{\"queued\":1}".to_owned()];
    broker
        .enqueue(&[entry(Priority::High)], &queued_updates)
        .await
        .unwrap();
    for text in &sent {
        broker.publish(text).await.unwrap();
    }
    let expected: Vec<String> = queued_updates.into_iter().chain(sent).collect();
    for rx in [&mut first, &mut second] {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            got.push(
                tokio::time::timeout(WAIT, rx.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(got, expected);
    }
    cancel.cancel();
    assert_eq!(
        drain(&broker).await.len(),
        1,
        "the queued ID is still there"
    );
}

async fn popped_ids_stay_held_until_acknowledged(broker: Broker) {
    let (queued, lost) = (entry(Priority::Default), JobId::new());
    let held = queued.id;
    broker.enqueue(&[queued], &[]).await.unwrap();
    assert_eq!(
        broker.missing(&[held, lost]).await.unwrap(),
        [lost],
        "never enqueued"
    );
    let mut consumer = broker
        .consumer("w1", Duration::from_millis(100), &types(&["noop"]))
        .await
        .unwrap();
    assert_eq!(consumer.pop().await.unwrap(), Some(held));
    assert!(
        broker.missing(&[held]).await.unwrap().is_empty(),
        "popped, not yet acknowledged"
    );
    broker.ack("w1", held).await.unwrap();
    assert_eq!(broker.missing(&[held]).await.unwrap(), [held]);
    broker.forget_worker("w1").await.unwrap();
}

async fn a_worker_takes_only_its_types_and_others_wait_visibly(broker: Broker) {
    let email = of("acme", "email", Priority::Default);
    let thumbnail = of("acme", "thumbnail", Priority::High);
    broker
        .enqueue(&[email.clone(), thumbnail.clone()], &[])
        .await
        .unwrap();
    assert_eq!(drain_types(&broker, &["email", "noop"]).await, [email.id]);
    assert_eq!(
        broker.queue_depths().await.unwrap(),
        [QueueDepth {
            job_type: "thumbnail".into(),
            priority: Priority::High,
            jobs: 1
        }],
        "the job no worker ran waits, counted under its type"
    );
    broker
        .worker_alive(
            "w2",
            Duration::from_secs(60),
            &types(&["email", "thumbnail"]),
        )
        .await
        .unwrap();
    assert_eq!(
        broker.live_types().await.unwrap(),
        [("email".to_owned(), 1), ("thumbnail".to_owned(), 1)]
    );
    assert_eq!(drain_types(&broker, &["thumbnail"]).await, [thumbnail.id]);
    assert!(broker.queue_depths().await.unwrap().is_empty());
    broker.forget_worker("w2").await.unwrap();
    assert!(broker.live_types().await.unwrap().is_empty());
}

/// While k tenants have jobs queued, any k pops in a row serve k different
/// tenants; each tenant's own jobs come oldest first.
async fn tenants_take_turns_each_in_its_own_order(broker: Broker) {
    let mut queued: Vec<QueueEntry> = Vec::new();
    for (tenant, n) in [("big", 6), ("mid", 2), ("one", 1)] {
        queued.extend((0..n).map(|_| of(tenant, "noop", Priority::Default)));
    }
    broker.enqueue(&queued, &[]).await.unwrap();
    let tenant_of = |id: &JobId| queued.iter().find(|j| j.id == *id).unwrap().tenant.clone();
    let popped = drain(&broker).await;
    let order: Vec<TenantId> = popped.iter().map(tenant_of).collect();
    let names: Vec<&str> = order.iter().map(TenantId::as_str).collect();
    let distinct = |window: &[TenantId]| window.iter().collect::<HashSet<_>>().len();
    assert_eq!(distinct(&order[..3]), 3, "one of each first: {names:?}");
    assert_eq!(
        distinct(&order[3..5]),
        2,
        "then the two with more: {names:?}"
    );
    assert!(order[5..].iter().all(|t| t.as_str() == "big"), "{names:?}");
    for tenant in ["big", "mid"] {
        let own: Vec<JobId> = queued
            .iter()
            .filter(|j| j.tenant.as_str() == tenant)
            .map(|j| j.id)
            .collect();
        let got: Vec<JobId> = popped
            .iter()
            .copied()
            .filter(|id| tenant_of(id).as_str() == tenant)
            .collect();
        assert_eq!(got, own, "{tenant}'s jobs in the order queued");
    }
}

async fn a_tenant_scoped_take_sees_only_its_tenants(broker: Broker) {
    let theirs = of("acme", "email", Priority::Critical);
    let ours = of("beta", "email", Priority::Low);
    broker
        .enqueue(&[theirs.clone(), ours.clone()], &[])
        .await
        .unwrap();
    let selection = Selection {
        types: types(&["email"]),
        tenants: vec!["beta".parse().unwrap(), "gamma".parse().unwrap()],
    };
    assert_eq!(
        broker.take("w1", &selection, 10, 0).await.unwrap(),
        [ours.id]
    );
    assert!(
        broker
            .take("w1", &selection, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(drain_types(&broker, &["email"]).await, [theirs.id]);
    broker.forget_worker("w1").await.unwrap();
}

fn quotas(of: &[(&str, QuotaOverride)]) -> Quotas {
    Quotas {
        defaults: Quota::default(),
        overrides: of
            .iter()
            .map(|(tenant, quota)| (tenant.parse().unwrap(), *quota))
            .collect(),
    }
}

async fn a_heavier_tenant_is_served_by_its_weight(broker: Broker) {
    let weighted = QuotaOverride {
        weight: Some(3),
        ..QuotaOverride::default()
    };
    broker
        .publish_quotas(&quotas(&[("heavy", weighted)]))
        .await
        .unwrap();
    let mut queued: Vec<QueueEntry> = Vec::new();
    for tenant in ["heavy", "light"] {
        queued.extend((0..8).map(|_| of(tenant, "noop", Priority::Default)));
    }
    broker.enqueue(&queued, &[]).await.unwrap();
    let popped = drain(&broker).await;
    let heavy = popped[..8]
        .iter()
        .filter(|id| {
            queued
                .iter()
                .any(|j| j.id == **id && j.tenant.as_str() == "heavy")
        })
        .count();
    assert_eq!(heavy, 6, "3 of every 4 while both have work");
    assert_eq!(popped.len(), 16);
}

async fn a_capped_tenant_is_passed_over_until_a_running_slot_is_freed(broker: Broker) {
    let capped = QuotaOverride {
        max_running: Some(1),
        ..QuotaOverride::default()
    };
    broker
        .publish_quotas(&quotas(&[("acme", capped)]))
        .await
        .unwrap();
    let (a1, a2, b1) = (
        of("acme", "noop", Priority::Default),
        of("acme", "noop", Priority::Default),
        of("beta", "noop", Priority::Default),
    );
    broker
        .enqueue(&[a1.clone(), a2.clone(), b1.clone()], &[])
        .await
        .unwrap();
    let selection = Selection {
        types: types(&["noop"]),
        tenants: Vec::new(),
    };
    let first: HashSet<JobId> = broker
        .take("w1", &selection, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(first, HashSet::from([a1.id, b1.id]), "acme's second waits");
    assert!(
        broker
            .take("w1", &selection, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // a1 ends: its announcement frees the slot.
    let ended = Outbox {
        released: vec![a1.clone()],
        ..Outbox::default()
    };
    broker.send(ended).await.unwrap();
    assert_eq!(broker.take("w1", &selection, 10, 0).await.unwrap(), [a2.id]);
    // A slot whose release was lost is found by the sweep and freed.
    let stale = broker.stale_slots(Duration::ZERO).await.unwrap();
    assert_eq!(stale, [(a2.tenant.clone(), a2.id)]);
    broker.settle_slots(&[], &stale).await.unwrap();
    assert!(broker.stale_slots(Duration::ZERO).await.unwrap().is_empty());
    broker.forget_worker("w1").await.unwrap();
}

async fn creates_are_admitted_by_queued_count_and_token_bucket(broker: Broker) {
    let acme: TenantId = "acme".parse().unwrap();
    let capped = Quota {
        max_queued: Some(2),
        ..Quota::default()
    };
    assert_eq!(broker.admit(&acme, 2, &capped).await.unwrap(), None);
    broker
        .enqueue(&[entry(Priority::Default), entry(Priority::High)], &[])
        .await
        .unwrap();
    assert_eq!(
        broker.admit(&acme, 1, &capped).await.unwrap(),
        Some(Refusal::QueueFull { queued: 2, max: 2 })
    );
    let mut consumer = broker
        .consumer("w1", Duration::from_millis(100), &types(&["noop"]))
        .await
        .unwrap();
    let id = consumer.pop().await.unwrap().unwrap();
    broker.ack("w1", id).await.unwrap();
    assert_eq!(broker.admit(&acme, 1, &capped).await.unwrap(), None);

    let rated = Quota {
        rate: Some(1.0),
        burst: Some(2),
        ..Quota::default()
    };
    assert_eq!(broker.admit(&acme, 2, &rated).await.unwrap(), None);
    match broker.admit(&acme, 1, &rated).await.unwrap() {
        Some(Refusal::RateLimited { retry_after }) => assert!(
            retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1),
            "{retry_after:?}"
        ),
        other => panic!("an empty bucket refuses: {other:?}"),
    }
    assert_eq!(
        broker.admit(&acme, 3, &rated).await.unwrap(),
        Some(Refusal::OverBurst { jobs: 3, burst: 2 })
    );
}

contract!(
    a_heavier_tenant_is_served_by_its_weight,
    a_capped_tenant_is_passed_over_until_a_running_slot_is_freed,
    creates_are_admitted_by_queued_count_and_token_bucket,
    a_worker_takes_only_its_types_and_others_wait_visibly,
    tenants_take_turns_each_in_its_own_order,
    a_tenant_scoped_take_sees_only_its_tenants,
    popped_ids_stay_held_until_acknowledged,
    higher_priorities_pop_first_and_fifo_within_one,
    a_waiting_pop_wakes_when_a_job_arrives,
    an_empty_queue_pops_nothing_after_the_block_time,
    concurrent_consumers_get_each_id_once,
    every_subscriber_receives_every_update_in_order,
);

/// Workers in other processes can die alone; only Redis tracks them.
#[tokio::test]
async fn a_dead_workers_unacknowledged_ids_are_released_for_redispatch() {
    let (broker, _purge) = redis().await;
    let queued = entry(Priority::Low);
    let id = queued.id;
    broker.enqueue(&[queued], &[]).await.unwrap();
    broker
        .worker_alive("doomed", Duration::from_millis(1), &types(&["noop"]))
        .await
        .unwrap();
    let mut consumer = broker
        .consumer("doomed", Duration::from_millis(100), &types(&["noop"]))
        .await
        .unwrap();
    assert_eq!(consumer.pop().await.unwrap(), Some(id));
    broker
        .worker_alive("living", Duration::from_secs(60), &types(&["noop"]))
        .await
        .unwrap();
    // The doomed worker's liveness expires after 1 ms; wait for the reaper to see it.
    let released = tokio::time::timeout(WAIT, async {
        loop {
            let released = broker.reap_dead_workers().await.unwrap();
            if released > 0 {
                return released;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(released, 1);
    assert_eq!(
        broker.missing(&[id]).await.unwrap(),
        [id],
        "re-dispatch will find it"
    );
    assert_eq!(
        broker.reap_dead_workers().await.unwrap(),
        0,
        "the living worker is kept"
    );
    broker.forget_worker("living").await.unwrap();
}

/// Redis left by jobwire before weighted turns scored its tenants by a
/// global counter and counted no tenant's queued IDs: on upgrade, tenants
/// already queued are set level with newcomers, and their IDs counted.
#[tokio::test]
async fn queues_of_an_older_jobwire_are_set_level_and_counted() {
    let (broker, purge) = redis().await;
    let prefix = purge.as_ref().unwrap().0.clone();
    let old: Vec<JobId> = (0..3).map(|_| JobId::new()).collect();
    let client = ::redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ids: Vec<String> = old.iter().map(JobId::to_string).collect();
    ::redis::pipe()
        .lpush(format!("{prefix}job_queue:default:old/noop"), &ids)
        .sadd(format!("{prefix}job_queue:pending"), &ids)
        .zadd(
            format!("{prefix}job_tenants:default:noop"),
            "old",
            5_000_000,
        )
        .sadd(format!("{prefix}job_types"), "noop")
        .set(format!("{prefix}job_turns"), 5_000_000)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let capped = Quota {
        max_queued: Some(3),
        ..Quota::default()
    };
    let old_tenant: TenantId = "old".parse().unwrap();
    assert_eq!(
        broker.admit(&old_tenant, 1, &capped).await.unwrap(),
        None,
        "not counted yet"
    );

    broker.drop_legacy_queues().await.unwrap();
    assert_eq!(
        broker.admit(&old_tenant, 1, &capped).await.unwrap(),
        Some(Refusal::QueueFull { queued: 3, max: 3 }),
        "its 3 queued IDs are counted"
    );
    let new = vec![
        of("new", "noop", Priority::Default),
        of("new", "noop", Priority::Default),
    ];
    broker.enqueue(&new, &[]).await.unwrap();
    let popped = drain(&broker).await;
    let first_two: HashSet<bool> = popped[..2].iter().map(|id| old.contains(id)).collect();
    assert_eq!(
        first_two.len(),
        2,
        "old and new take turns from the start: {popped:?}"
    );
    assert_eq!(popped.len(), 5);
    let turns: bool = ::redis::cmd("EXISTS")
        .arg(format!("{prefix}job_turns"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!turns, "done once");
}

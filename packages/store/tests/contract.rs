//! The store contract: every test runs against both adapters, a real
//! Postgres database of its own and a real SQLite file of its own.

#![allow(
    clippy::unwrap_used,
    reason = "a test that meets an unexpected None or Err should fail right there"
)]

use std::collections::HashSet;
use std::path::PathBuf;

use std::time::Duration;

use jobwire_core::{Idempotency, Job, JobId, NewJob, Priority, QueueEntry, Status, TenantId};
use jobwire_store::{Claim, Finish, Inserted, LeaseToken, ListFilter, Outcome, Store, StoreError};
use serde_json::json;

/// A store of its own; removed when dropped.
struct TestStore {
    store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres(String),
    Sqlite(PathBuf),
}

fn pg_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn postgres() -> TestStore {
    let db = format!("jobwire_store_test_{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(&format!("{}/{db}", pg_server_url()), 20)
        .await
        .expect("Postgres must be running for the tests (see README)");
    TestStore {
        store,
        cleanup: Cleanup::Postgres(db),
    }
}

async fn sqlite() -> TestStore {
    let dir = std::env::temp_dir().join(format!(
        "jobwire-store-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite:{}", dir.join("jobs.db").display()), 1)
        .await
        .unwrap();
    TestStore {
        store,
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// `:memory:`: the database lives in the store's one connection.
async fn sqlite_memory() -> Store {
    Store::connect("sqlite::memory:", 1).await.unwrap()
}

impl Drop for TestStore {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres(db) => {
                let (db, server) = (db.clone(), pg_server_url());
                // Async cleanup needs a runtime of its own: the test's may be ending.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async move {
                        if let Ok(pool) = sqlx::PgPool::connect(&format!("{server}/postgres")).await
                        {
                            let _ =
                                sqlx::query(&format!("drop database if exists {db} with (force)"))
                                    .execute(&pool)
                                    .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $( #[tokio::test] async fn $test() { let owned = super::postgres().await; super::$test(owned.store.clone()).await } )*
        }
        mod sqlite_memory {
            $( #[tokio::test] async fn $test() { super::$test(super::sqlite_memory().await).await } )*
        }
        mod sqlite {
            $( #[tokio::test] async fn $test() { let owned = super::sqlite().await; super::$test(owned.store.clone()).await } )*
        }
    };
}

#[path = "contract/retention.rs"]
mod retention;

fn tenant(name: &str) -> TenantId {
    name.parse().unwrap()
}

fn new_job(tenant_name: &str, job_type: &str, priority: Priority) -> NewJob {
    NewJob {
        id: JobId::new(),
        tenant: tenant(tenant_name),
        job_type: job_type.parse().unwrap(),
        payload: json!({"n": 1}),
        priority,
        max_attempts: 3,
        run_at: None,
        timeout_ms: None,
        idempotency: None,
        retain_for: None,
    }
}

fn filter(limit: u32) -> ListFilter {
    ListFilter {
        status: None,
        job_type: None,
        before: None,
        limit,
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn insert(store: &Store, jobs: &[NewJob]) -> Vec<Job> {
    store
        .insert(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|inserted| match inserted {
            Inserted::Created(job) => job,
            Inserted::Existing(job) => panic!("job {} existed", job.id),
        })
        .collect()
}

async fn claim(store: &Store, id: JobId) -> Claim {
    store
        .claim(id, "w1", LEASE)
        .await
        .unwrap()
        .expect("claimable")
}

async fn create_returns_queued_jobs_in_the_order_given(store: Store) {
    let batch: Vec<NewJob> = (0..50)
        .map(|_| new_job("acme", "noop", Priority::Default))
        .collect();
    let jobs = insert(&store, &batch).await;
    let given: Vec<JobId> = batch.iter().map(|j| j.id).collect();
    let returned: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(returned, given);
    for job in &jobs {
        assert_eq!(
            (job.status, job.version, job.attempt, job.max_attempts),
            (Status::Queued, 1, 0, 3)
        );
        assert_eq!(job.payload, json!({"n": 1}));
        assert!(job.started_at.is_none() && job.finished_at.is_none());
    }
    let stored = store.get(&tenant("acme"), given[7]).await.unwrap().unwrap();
    assert_eq!(stored, jobs[7]);
}

async fn a_job_is_claimed_once_under_concurrency(store: Store) {
    let jobs = insert(
        &store,
        &(0..10)
            .map(|_| new_job("acme", "noop", Priority::High))
            .collect::<Vec<_>>(),
    )
    .await;
    let mut claims = tokio::task::JoinSet::new();
    for job in &jobs {
        for _ in 0..4 {
            let (store, id) = (store.clone(), job.id);
            claims.spawn(async move { store.claim(id, "w1", LEASE).await.unwrap() });
        }
    }
    let mut won = Vec::new();
    while let Some(claim) = claims.join_next().await {
        if let Some(Claim { job, .. }) = claim.unwrap() {
            assert_eq!(
                (job.status, job.attempt, job.version),
                (Status::Running, 1, 2)
            );
            assert!(job.started_at.is_some());
            won.push(job.id);
        }
    }
    assert_eq!(won.len(), jobs.len(), "each job claimed exactly once");
    assert_eq!(won.iter().collect::<HashSet<_>>().len(), jobs.len());
}

async fn finishing_stores_the_outcome_once_and_only_with_the_lease(store: Store) {
    let jobs = insert(
        &store,
        &[
            new_job("acme", "echo", Priority::Default),
            new_job("acme", "fail", Priority::Default),
        ],
    )
    .await;
    let stranger = LeaseToken("not-a-lease".into());
    assert!(
        store
            .finish(jobs[0].id, &stranger, Outcome::Succeeded(json!(1)))
            .await
            .unwrap()
            .is_none(),
        "not running yet"
    );
    let first = claim(&store, jobs[0].id).await;
    let second = claim(&store, jobs[1].id).await;
    assert_ne!(first.token, second.token);
    let progressed = store
        .report_progress(jobs[0].id, &first.token, &json!({"percent": 50}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (progressed.version, progressed.progress.clone()),
        (3, Some(json!({"percent": 50})))
    );
    assert!(
        store
            .finish(jobs[0].id, &stranger, Outcome::Succeeded(json!(0)))
            .await
            .unwrap()
            .is_none(),
        "fenced off"
    );

    let done = store
        .finish(
            jobs[0].id,
            &first.token,
            Outcome::Succeeded(json!({"ok": true})),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.status, done.version), (Status::Succeeded, 4));
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(done.finished_at.is_some() && done.error.is_none());
    assert!(
        done.change_seq > progressed.change_seq,
        "each change moves the job in the change feed"
    );

    let failed = store
        .finish(jobs[1].id, &second.token, Outcome::Failed("boom".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref(), failed.version),
        (Status::Failed, Some("boom"), 3)
    );

    assert!(
        store
            .finish(jobs[0].id, &first.token, Outcome::Failed("late".into()))
            .await
            .unwrap()
            .is_none(),
        "finished once"
    );
    assert!(
        store
            .report_progress(jobs[0].id, &first.token, &json!(1))
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_retry_is_scheduled_then_promoted_when_due(store: Store) {
    let job = insert(&store, &[new_job("acme", "fail", Priority::High)])
        .await
        .remove(0);
    let lease = claim(&store, job.id).await;
    let due = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    let scheduled = store
        .finish(
            job.id,
            &lease.token,
            Outcome::Retry {
                error: "try again".into(),
                run_at: due,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (scheduled.status, scheduled.error.as_deref()),
        (Status::Scheduled, Some("try again"))
    );
    assert!(scheduled.run_at.is_some() && scheduled.finished_at.is_none());
    assert!(
        store.claim(job.id, "w1", LEASE).await.unwrap().is_none(),
        "not claimable before it is promoted"
    );
    let promoted = store.promote_due().await.unwrap();
    assert_eq!(
        promoted
            .iter()
            .map(|j| (j.id, j.status))
            .collect::<Vec<_>>(),
        [(job.id, Status::Queued)]
    );
    assert_eq!(claim(&store, job.id).await.job.attempt, 2);

    let mut later = new_job("acme", "noop", Priority::Low);
    later.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let delayed = insert(&store, &[later]).await.remove(0);
    assert_eq!(delayed.status, Status::Scheduled);
    assert!(
        store.promote_due().await.unwrap().is_empty(),
        "not due for an hour"
    );
}

async fn an_expired_lease_requeues_or_fails_the_job(store: Store) {
    let mut last_try = new_job("acme", "noop", Priority::Default);
    last_try.max_attempts = 1;
    let jobs = insert(
        &store,
        &[new_job("acme", "noop", Priority::Default), last_try],
    )
    .await;
    let dying = store
        .claim(jobs[0].id, "dead", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    store
        .claim(jobs[1].id, "dead", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let alive = insert(&store, &[new_job("acme", "noop", Priority::Default)])
        .await
        .remove(0);
    claim(&store, alive.id).await;
    // w1 holds `forgotten` too but does not know it (its claim's answer was lost).
    let forgotten = insert(&store, &[new_job("acme", "noop", Priority::Default)])
        .await
        .remove(0);
    store
        .claim(forgotten.id, "w1", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let held: Vec<JobId> = store
        .heartbeat("w1", &[alive.id, jobs[0].id], LEASE)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(held, [alive.id]);

    let reaped = store.reap_expired().await.unwrap();
    let outcome: HashSet<(JobId, Status)> = reaped.iter().map(|j| (j.id, j.status)).collect();
    assert_eq!(
        outcome,
        HashSet::from([
            (jobs[0].id, Status::Queued),
            (jobs[1].id, Status::Failed),
            (forgotten.id, Status::Queued)
        ])
    );
    assert!(
        reaped
            .iter()
            .all(|j| j.error.as_deref() == Some(jobwire_store::LEASE_LOST))
    );
    assert!(
        store
            .finish(jobs[0].id, &dying.token, Outcome::Succeeded(json!(1)))
            .await
            .unwrap()
            .is_none(),
        "the lost attempt is fenced off"
    );
    let again = claim(&store, jobs[0].id).await;
    assert_eq!(again.job.attempt, 2);
    let released = store
        .release(jobs[0].id, &again.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released.status, Status::Queued);
}

async fn an_idempotency_key_returns_the_first_job_or_conflicts(store: Store) {
    let keyed = |hash: &str| {
        let mut job = new_job("acme", "noop", Priority::Default);
        job.idempotency = Some(Idempotency {
            key: "order-42".into(),
            request_hash: hash.into(),
        });
        job
    };
    let first = insert(&store, &[keyed("h1")]).await.remove(0);
    let again = store.insert(&[keyed("h1")]).await.unwrap();
    assert_eq!(again, [Inserted::Existing(first.clone())]);
    assert!(matches!(
        store.insert(&[keyed("h2")]).await,
        Err(StoreError::IdempotencyConflict { .. })
    ));
    let mut other_tenant = keyed("h2");
    other_tenant.tenant = tenant("globex");
    assert!(
        matches!(
            store.insert(&[other_tenant]).await.unwrap()[0],
            Inserted::Created(_)
        ),
        "keys are per tenant"
    );
    assert_eq!(
        store
            .list(&tenant("acme"), &filter(10))
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
}

async fn an_unfinished_job_of_the_tenant_can_be_cancelled_and_retried(store: Store) {
    let jobs = insert(
        &store,
        &[
            new_job("acme", "noop", Priority::Low),
            new_job("acme", "noop", Priority::Low),
        ],
    )
    .await;
    let cancelled = store.cancel(&tenant("acme"), jobs[0].id).await.unwrap();
    assert_eq!(
        (cancelled.status, cancelled.version),
        (Status::Cancelled, 2)
    );
    assert!(
        store
            .claim(jobs[0].id, "w1", LEASE)
            .await
            .unwrap()
            .is_none(),
        "a cancelled job never runs"
    );
    assert!(matches!(
        store.cancel(&tenant("acme"), jobs[0].id).await,
        Err(StoreError::InvalidTransition {
            status: Status::Cancelled,
            ..
        })
    ));
    let running = claim(&store, jobs[1].id).await;
    assert_eq!(
        store
            .cancel(&tenant("acme"), jobs[1].id)
            .await
            .unwrap()
            .status,
        Status::Cancelled
    );
    assert!(
        store
            .heartbeat("w1", &[jobs[1].id], LEASE)
            .await
            .unwrap()
            .is_empty(),
        "its worker learns it lost the job"
    );
    assert!(
        store
            .finish(jobs[1].id, &running.token, Outcome::Succeeded(json!(1)))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.cancel(&tenant("globex"), jobs[1].id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.cancel(&tenant("acme"), JobId::new()).await,
        Err(StoreError::NotFound { .. })
    ));

    let retried = store.retry(&tenant("acme"), jobs[1].id).await.unwrap();
    assert_eq!((retried.status, retried.attempt), (Status::Queued, 0));
    assert!(matches!(
        store.retry(&tenant("acme"), jobs[1].id).await,
        Err(StoreError::InvalidTransition {
            status: Status::Queued,
            ..
        })
    ));
}

async fn listing_pages_newest_first_per_tenant(store: Store) {
    let mut ids = Vec::new();
    for n in 0..7 {
        let job_type = if n % 2 == 0 { "even" } else { "odd" };
        ids.push(insert(&store, &[new_job("acme", job_type, Priority::Default)]).await[0].id);
    }
    insert(&store, &[new_job("globex", "even", Priority::Default)]).await;
    claim(&store, ids[3]).await;

    let mut listed = Vec::new();
    let mut page = store.list(&tenant("acme"), &filter(3)).await.unwrap();
    let mut sizes = vec![page.jobs.len()];
    listed.extend(page.jobs.iter().map(|j| j.id));
    while let Some(cursor) = page.next_cursor {
        page = store
            .list(
                &tenant("acme"),
                &ListFilter {
                    before: Some(cursor),
                    ..filter(3)
                },
            )
            .await
            .unwrap();
        sizes.push(page.jobs.len());
        listed.extend(page.jobs.iter().map(|j| j.id));
    }
    ids.reverse();
    assert_eq!(listed, ids, "newest first, every job once");
    assert_eq!(sizes, [3, 3, 1]);

    let odd = store
        .list(
            &tenant("acme"),
            &ListFilter {
                job_type: Some("odd".parse().unwrap()),
                ..filter(10)
            },
        )
        .await
        .unwrap();
    assert_eq!(odd.jobs.len(), 3);
    let running = store
        .list(
            &tenant("acme"),
            &ListFilter {
                status: Some(Status::Running),
                ..filter(10)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        running.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[3]]
    );
    assert_eq!(
        store
            .list(&tenant("globex"), &filter(10))
            .await
            .unwrap()
            .jobs
            .len(),
        1
    );
    assert!(
        store
            .get(&tenant("globex"), ids[0])
            .await
            .unwrap()
            .is_none(),
        "another tenant's job is not found"
    );
}

async fn recovery_requeues_running_jobs_and_lists_queued_oldest_first(store: Store) {
    let jobs = insert(
        &store,
        &[
            new_job("acme", "noop", Priority::Low),
            new_job("acme", "noop", Priority::Critical),
            new_job("acme", "noop", Priority::Default),
        ],
    )
    .await;
    claim(&store, jobs[0].id).await;
    claim(&store, jobs[2].id).await;
    let requeued = store.requeue_running().await.unwrap();
    assert_eq!(requeued.len(), 2);
    assert!(
        requeued
            .iter()
            .all(|j| j.status == Status::Queued && j.version == 3 && j.attempt == 1)
    );
    let queued = store.queued().await.unwrap();
    assert_eq!(
        queued,
        [&jobs[0], &jobs[1], &jobs[2]].map(QueueEntry::from),
        "each with its priority, tenant and type"
    );
    let again = claim(&store, jobs[0].id).await.job;
    assert_eq!(
        (again.attempt, again.version),
        (2, 4),
        "a re-run counts as a new attempt"
    );
    let old = store
        .queued_older_than(Duration::ZERO, Some(jobs[0].id), 10)
        .await
        .unwrap();
    assert_eq!(old, [&jobs[1], &jobs[2]].map(QueueEntry::from));
}

async fn the_change_feed_and_many_jobs_read_back(store: Store) {
    let jobs = insert(
        &store,
        &[
            new_job("acme", "noop", Priority::Low),
            new_job("acme", "noop", Priority::Low),
        ],
    )
    .await;
    insert(&store, &[new_job("globex", "noop", Priority::Low)]).await;
    let mark = jobs.iter().map(|j| j.change_seq).max().unwrap();
    assert_eq!(
        store
            .changes_since(&tenant("acme"), 0, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .changes_since(&tenant("acme"), mark, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let running = claim(&store, jobs[0].id).await.job;
    let changes = store
        .changes_since(&tenant("acme"), mark, 10)
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].place, running.change_seq);
    assert_eq!(changes[0].update, jobwire_core::JobUpdate::from(&running));
    let of = store
        .changes_of(&tenant("acme"), &[jobs[0].id, JobId::new()])
        .await
        .unwrap();
    assert_eq!(of, changes, "the current state of the named jobs only");
    assert!(
        store
            .changes_of(&tenant("globex"), &[jobs[0].id])
            .await
            .unwrap()
            .is_empty(),
        "another tenant's job is not named"
    );
    assert_eq!(
        store
            .count_changes_since(&tenant("acme"), 0, 10)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_changes_since(&tenant("acme"), 0, 1)
            .await
            .unwrap(),
        1,
        "counted up to the limit only"
    );
    let many = store
        .get_many(&tenant("acme"), &[jobs[0].id, jobs[1].id, JobId::new()])
        .await
        .unwrap();
    assert_eq!(
        many.iter().map(|j| j.id).collect::<Vec<_>>(),
        [jobs[0].id, jobs[1].id]
    );
    assert!(
        store
            .get_many(&tenant("globex"), &[jobs[0].id])
            .await
            .unwrap()
            .is_empty()
    );
}

/// A batch claim and a batch finish: only claimable jobs and live leases
/// change, each changed job takes its own next place in the change feed (no
/// place shared, none skipped), and outcomes keep their JSON as given.
async fn batches_claim_and_finish_many_jobs_in_one_write(store: Store) {
    let jobs = insert(
        &store,
        &(0..6)
            .map(|_| new_job("acme", "noop", Priority::Default))
            .collect::<Vec<_>>(),
    )
    .await;
    store.cancel(&tenant("acme"), jobs[5].id).await.unwrap();
    let before = store
        .changes_since(&tenant("acme"), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|change| change.place)
        .max()
        .unwrap();

    let attempts: Vec<(JobId, LeaseToken)> =
        jobs.iter().map(|job| (job.id, LeaseToken::new())).collect();
    let claims = store.claim_many(&attempts, "w1", LEASE).await.unwrap();
    let mut claimed: Vec<JobId> = claims.iter().map(|c| c.job.id).collect();
    claimed.sort();
    let mut expected: Vec<JobId> = jobs[..5].iter().map(|job| job.id).collect();
    expected.sort();
    assert_eq!(claimed, expected, "the cancelled job is not claimed");
    for claim in &claims {
        let given = attempts.iter().find(|(id, _)| *id == claim.job.id).unwrap();
        assert_eq!(
            claim.token, given.1,
            "each job is claimed under its own token"
        );
        assert_eq!((claim.job.status, claim.job.attempt), (Status::Running, 1));
    }
    let mut places: Vec<i64> = claims.iter().map(|c| c.job.change_seq).collect();
    places.sort();
    assert_eq!(places, ((before + 1)..=(before + 5)).collect::<Vec<_>>());

    let results = [json!("text"), json!({"a": [1, 2]}), json!(null), json!(7)];
    let mut batch: Vec<Finish> = claims[..4]
        .iter()
        .zip(&results)
        .map(|(claim, result)| Finish {
            id: claim.job.id,
            lease: claim.token.clone(),
            outcome: Outcome::Succeeded(result.clone()),
        })
        .collect();
    batch.push(Finish {
        id: claims[4].job.id,
        lease: LeaseToken::new(),
        outcome: Outcome::Succeeded(json!("stale")),
    });
    let finished = store.finish_many(batch).await.unwrap();
    assert_eq!(finished.len(), 4, "the stale lease's outcome is dropped");
    for (claim, result) in claims[..4].iter().zip(&results) {
        let stored = store
            .get(&tenant("acme"), claim.job.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, Status::Succeeded);
        assert_eq!(stored.result.as_ref(), Some(result));
    }
    let mut places: Vec<i64> = finished.iter().map(|job| job.change_seq).collect();
    places.sort();
    assert_eq!(places, ((before + 6)..=(before + 9)).collect::<Vec<_>>());
    let still = store
        .get(&tenant("acme"), claims[4].job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.status, Status::Running);
}

/// Times compare as times: a job due in 9999 is not promoted, and one
/// outside years 1 to 9999 (where text order and time order part) is refused
/// whole, with the rest of its batch.
async fn far_future_jobs_stay_scheduled_and_out_of_range_times_are_refused(store: Store) {
    let mut late = new_job("acme", "noop", Priority::Default);
    late.run_at = Some("9999-12-31T23:59:59Z".parse().unwrap());
    store.insert(&[late]).await.unwrap();
    assert!(
        store.promote_due().await.unwrap().is_empty(),
        "a job due in 9999 is not due now"
    );

    let fine = new_job("acme", "noop", Priority::Default);
    let mut too_late = new_job("acme", "noop", Priority::Default);
    too_late.run_at = Some(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    let mut too_early = new_job("acme", "noop", Priority::Default);
    too_early.run_at = Some(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    for bad in [too_late, too_early] {
        let id = bad.id;
        match store.insert(&[fine.clone(), bad]).await {
            Err(StoreError::TimeOutOfRange { id: refused, .. }) => assert_eq!(refused, id),
            other => panic!("expected TimeOutOfRange, got {other:?}"),
        }
    }
    let listed = store.list(&tenant("acme"), &filter(10)).await.unwrap();
    assert_eq!(listed.jobs.len(), 1, "only the job due in 9999 was written");
}

/// Ends the attempt `lease` holds with a retry due at once, and queues the job again.
async fn fail_and_requeue(store: &Store, lease: &Claim, error: &str) -> Job {
    let scheduled = store
        .finish(
            lease.job.id,
            &lease.token,
            Outcome::Retry {
                error: error.into(),
                run_at: chrono::Utc::now() - chrono::Duration::milliseconds(1),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.promote_due().await.unwrap().len(), 1);
    scheduled
}

/// `(attempt, error)` of each entry of a job's history, oldest first.
fn history(job: &Job) -> Vec<(i32, &str)> {
    job.attempt_errors
        .iter()
        .map(|entry| (entry.attempt, entry.error.as_str()))
        .collect()
}

async fn every_failed_attempt_stays_in_the_jobs_history(store: Store) {
    let job = insert(&store, &[new_job("acme", "fail", Priority::Default)])
        .await
        .remove(0);
    assert!(job.attempt_errors.is_empty());

    let first = claim(&store, job.id).await;
    let scheduled = fail_and_requeue(&store, &first, "first").await;
    assert_eq!(history(&scheduled), [(1, "first")]);
    let entry = &scheduled.attempt_errors[0];
    assert_eq!(
        (entry.started_at, entry.ended_at),
        (first.job.started_at, scheduled.updated_at),
        "from the attempt's start to the write that ended it"
    );

    let second = claim(&store, job.id).await;
    fail_and_requeue(&store, &second, "second").await;
    let third = claim(&store, job.id).await;
    assert_eq!(
        history(&third.job),
        [(1, "first"), (2, "second")],
        "a new attempt keeps the history"
    );
    let done = store
        .finish(job.id, &third.token, Outcome::Succeeded(json!("ok")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.status, done.attempt), (Status::Succeeded, 3));
    assert_eq!(
        history(&done),
        [(1, "first"), (2, "second")],
        "a success adds nothing"
    );
    assert_eq!(
        done.attempt_errors[1].started_at, second.job.started_at,
        "each entry keeps its own attempt's start"
    );
    let stored = store.get(&tenant("acme"), job.id).await.unwrap().unwrap();
    assert_eq!(stored.attempt_errors, done.attempt_errors);

    // The last attempt fails for good; a retry by hand keeps the history.
    let mut once = new_job("acme", "fail", Priority::Default);
    once.max_attempts = 1;
    let once = insert(&store, &[once]).await.remove(0);
    let lease = claim(&store, once.id).await;
    let failed = store
        .finish(once.id, &lease.token, Outcome::Failed("boom".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history(&failed), [(1, "boom")]);
    assert_eq!(Some(failed.attempt_errors[0].ended_at), failed.finished_at);
    let retried = store.retry(&tenant("acme"), once.id).await.unwrap();
    assert_eq!(retried.attempt, 0);
    assert_eq!(retried.attempt_errors, failed.attempt_errors);
    let lease = claim(&store, once.id).await;
    let failed_again = store
        .finish(once.id, &lease.token, Outcome::Failed("boom again".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        history(&failed_again),
        [(1, "boom"), (1, "boom again")],
        "newest last, each with its own attempt number"
    );
    let listed = store.list(&tenant("acme"), &filter(10)).await.unwrap();
    assert_eq!(listed.jobs[0].attempt_errors, failed_again.attempt_errors);
}

async fn a_lost_lease_is_a_failed_attempt_a_cancel_or_release_is_not(store: Store) {
    let mut last_try = new_job("acme", "noop", Priority::Default);
    last_try.max_attempts = 1;
    let jobs = insert(
        &store,
        &[new_job("acme", "noop", Priority::Default), last_try],
    )
    .await;
    let mut started = Vec::new();
    for job in &jobs {
        let claimed = store
            .claim(job.id, "dead", Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        started.push(claimed.job.started_at);
    }
    let mut reaped = store.reap_expired().await.unwrap();
    reaped.sort_by_key(|job| jobs.iter().position(|j| j.id == job.id));
    assert_eq!(
        reaped.iter().map(|j| j.status).collect::<Vec<_>>(),
        [Status::Queued, Status::Failed]
    );
    for (job, started_at) in reaped.iter().zip(started) {
        assert_eq!(history(job), [(1, jobwire_store::LEASE_LOST)]);
        let entry = &job.attempt_errors[0];
        assert_eq!(
            (entry.started_at, entry.ended_at),
            (started_at, job.updated_at)
        );
    }
    assert_eq!(
        Some(reaped[1].attempt_errors[0].ended_at),
        reaped[1].finished_at
    );

    // Neither sets an error: the attempt did not fail, it was stopped.
    let lease = claim(&store, jobs[0].id).await;
    let released = store
        .release(jobs[0].id, &lease.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history(&released), [(1, jobwire_store::LEASE_LOST)]);
    claim(&store, jobs[0].id).await;
    let cancelled = store.cancel(&tenant("acme"), jobs[0].id).await.unwrap();
    assert_eq!(
        (cancelled.attempt, history(&cancelled)),
        (3, vec![(1, jobwire_store::LEASE_LOST)])
    );
}

/// The operators' view and the per-bucket gauges read every tenant's
/// unfinished jobs: grouped per tenant (most queued first, bounded by the
/// limit, with the total) and per tenant bucket, finished jobs left out.
async fn unfinished_jobs_are_counted_per_tenant_and_per_tenant_bucket(store: Store) {
    // acme: 3 queued, 1 running, 1 scheduled, 1 cancelled; globex: 1 queued,
    // 2 running; initech: 5 queued; umbrella: only a finished job.
    let mut acme: Vec<NewJob> = (0..5)
        .map(|_| new_job("acme", "noop", Priority::Default))
        .collect();
    acme[4].run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let acme = insert(&store, &acme).await;
    claim(&store, acme[0].id).await;
    let cancelled = insert(&store, &[new_job("acme", "noop", Priority::High)]).await;
    store
        .cancel(&tenant("acme"), cancelled[0].id)
        .await
        .unwrap();
    let globex = insert(
        &store,
        &(0..3)
            .map(|_| new_job("globex", "noop", Priority::Low))
            .collect::<Vec<_>>(),
    )
    .await;
    claim(&store, globex[0].id).await;
    claim(&store, globex[1].id).await;
    insert(
        &store,
        &(0..5)
            .map(|_| new_job("initech", "noop", Priority::Critical))
            .collect::<Vec<_>>(),
    )
    .await;
    let umbrella = insert(&store, &[new_job("umbrella", "noop", Priority::Default)]).await;
    store
        .cancel(&tenant("umbrella"), umbrella[0].id)
        .await
        .unwrap();

    let page = store.tenant_counts(100).await.unwrap();
    let rows: Vec<(&str, i64, i64, i64)> = page
        .tenants
        .iter()
        .map(|t| (t.tenant.as_str(), t.scheduled, t.queued, t.running))
        .collect();
    assert_eq!(
        rows,
        [("initech", 0, 5, 0), ("acme", 1, 3, 1), ("globex", 0, 1, 2),],
        "most queued first, finished jobs and tenants with none left out"
    );
    assert_eq!(page.total, 3);
    let first = store.tenant_counts(2).await.unwrap();
    assert_eq!(first.tenants.len(), 2, "no more than the limit");
    assert_eq!(first.total, 3, "the total counts the tenants left out too");
    assert_eq!(first.tenants[..], page.tenants[..2]);

    let buckets = store.bucket_counts().await.unwrap();
    assert_eq!(buckets.len(), usize::from(jobwire_core::TENANT_BUCKETS));
    let mut expected = vec![[0_i64; 3]; buckets.len()];
    for (name, scheduled, queued, running) in rows {
        let at = usize::from(tenant(name).bucket());
        expected[at][0] += scheduled;
        expected[at][1] += queued;
        expected[at][2] += running;
    }
    let got: Vec<[i64; 3]> = buckets
        .iter()
        .map(|b| [b.scheduled, b.queued, b.running])
        .collect();
    assert_eq!(got, expected);
}

/// The counts across tenants read the unfinished jobs through indexes: with
/// 20,000 jobs, nearly all finished, neither plan scans the table.
async fn counts_across_tenants_read_only_unfinished_jobs_through_indexes(store: Store) {
    let jobs: Vec<NewJob> = (0..20_000)
        .map(|n| new_job(&format!("t{}", n % 500), "noop", Priority::Default))
        .collect();
    for chunk in jobs.chunks(2000) {
        store.insert(chunk).await.unwrap();
    }
    match &store {
        Store::Postgres(pg) => {
            for statement in [
                "update jobs set status = 'succeeded', finished_at = now() \
                 where abs(hashtext(id::text)) % 50 <> 0",
                "analyze jobs",
            ] {
                sqlx::query(statement).execute(pg.pool()).await.unwrap();
            }
        }
        Store::Sqlite(sqlite) => {
            for statement in [
                "update jobs set status = 'succeeded', \
                 finished_at = '2020-01-01T00:00:00.000000Z' where abs(random()) % 50 <> 0",
                "analyze",
            ] {
                sqlx::query(statement).execute(sqlite.pool()).await.unwrap();
            }
        }
    }
    let plans = store.explain_counts().await.unwrap();
    assert_eq!(plans.len(), 2);
    for plan in &plans {
        for line in plan.lines() {
            assert!(
                !line.contains("Seq Scan on jobs") && !line.trim_start().starts_with("SCAN jobs"),
                "a count scans the whole table:\n{plan}"
            );
        }
    }
    let queued = store.tenant_counts(1000).await.unwrap();
    let total: i64 = queued.tenants.iter().map(|t| t.queued).sum();
    let in_buckets: i64 = store
        .bucket_counts()
        .await
        .unwrap()
        .iter()
        .map(|b| b.queued)
        .sum();
    assert!(total > 0 && total < 2000, "{total} of 20000 still queued");
    assert_eq!(in_buckets, total, "the two counts agree");
}

/// Behind a backlog the planner knows nothing about yet (20,000 queued jobs,
/// never analyzed, as while a flood drains), the worker maintenance's reads
/// stay cheap: the lost-ID sweep walks the queued jobs in ID order through
/// an index and stops at its batch (no sort of every queued job); no read
/// uses a bitmap scan, which would visit every dead index entry's page on
/// every run; the heartbeat finds leases by ID.
async fn maintenance_reads_stay_on_index_walks_behind_a_backlog(store: Store) {
    let jobs: Vec<NewJob> = (0..20_000)
        .map(|n| new_job(&format!("t{}", n % 50), "noop", Priority::Default))
        .collect();
    for chunk in jobs.chunks(2000) {
        store.insert(chunk).await.unwrap();
    }
    let plans = store.explain_maintenance().await.unwrap();
    let names: Vec<&str> = plans.iter().map(|(name, _)| *name).collect();
    match &store {
        Store::Postgres(_) => assert_eq!(names, ["sweep", "reap", "heartbeat"]),
        Store::Sqlite(_) => assert_eq!(names, ["sweep"]),
    }
    for (name, plan) in &plans {
        for line in plan.lines() {
            assert!(
                !line.contains("Bitmap")
                    && !line.contains("Seq Scan on jobs")
                    && !line.trim_start().starts_with("SCAN jobs"),
                "{name} walks more than it needs:\n{plan}"
            );
        }
    }
    let (_, sweep) = &plans[0];
    assert!(
        !sweep.contains("Sort") && !sweep.contains("TEMP B-TREE"),
        "the sweep sorts every queued job for one batch:\n{sweep}"
    );
    if let Some((_, heartbeat)) = plans.iter().find(|(name, _)| *name == "heartbeat") {
        assert!(
            heartbeat.contains("jobs_pkey"),
            "the heartbeat does not find leases by ID:\n{heartbeat}"
        );
    }
}

contract!(
    create_returns_queued_jobs_in_the_order_given,
    a_job_is_claimed_once_under_concurrency,
    finishing_stores_the_outcome_once_and_only_with_the_lease,
    a_retry_is_scheduled_then_promoted_when_due,
    an_expired_lease_requeues_or_fails_the_job,
    an_idempotency_key_returns_the_first_job_or_conflicts,
    an_unfinished_job_of_the_tenant_can_be_cancelled_and_retried,
    listing_pages_newest_first_per_tenant,
    recovery_requeues_running_jobs_and_lists_queued_oldest_first,
    the_change_feed_and_many_jobs_read_back,
    batches_claim_and_finish_many_jobs_in_one_write,
    far_future_jobs_stay_scheduled_and_out_of_range_times_are_refused,
    every_failed_attempt_stays_in_the_jobs_history,
    a_lost_lease_is_a_failed_attempt_a_cancel_or_release_is_not,
    unfinished_jobs_are_counted_per_tenant_and_per_tenant_bucket,
    counts_across_tenants_read_only_unfinished_jobs_through_indexes,
    maintenance_reads_stay_on_index_walks_behind_a_backlog,
);

/// The gap filler's reads by place (`changes_at`, `latest_change`) use an
/// index on Postgres too: with 20,000 jobs, the plan is no sequential scan.
#[tokio::test]
async fn postgres_reads_changes_by_place_through_an_index() {
    let owned = postgres().await;
    let jobs: Vec<NewJob> = (0..20_000)
        .map(|_| new_job("acme", "noop", Priority::Default))
        .collect();
    for chunk in jobs.chunks(2000) {
        owned.store.insert(chunk).await.unwrap();
    }
    let Cleanup::Postgres(db) = &owned.cleanup else {
        unreachable!("a Postgres store")
    };
    let pool = sqlx::PgPool::connect(&format!("{}/{db}", pg_server_url()))
        .await
        .unwrap();
    sqlx::query("analyze jobs").execute(&pool).await.unwrap();
    for query in [
        "explain select id from jobs where change_seq = any('{5,7}'::bigint[])",
        "explain select max(change_seq) from jobs",
    ] {
        let plan: Vec<String> = sqlx::query_scalar(query).fetch_all(&pool).await.unwrap();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "{query}:\n{plan}");
    }
    pool.close().await;
}

//! The store contract: every test runs against both adapters, a real
//! Postgres database of its own and a real SQLite file of its own.

#![allow(
    clippy::unwrap_used,
    reason = "a test that meets an unexpected None or Err should fail right there"
)]

use std::collections::HashSet;
use std::path::PathBuf;

use jobwire_core::{JobId, NewJob, Priority, Status, TenantId};
use jobwire_store::{ListFilter, Outcome, Store, StoreError};
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

async fn create_returns_queued_jobs_in_the_order_given(store: Store) {
    let batch: Vec<NewJob> = (0..50)
        .map(|_| new_job("acme", "noop", Priority::Default))
        .collect();
    let jobs = store.insert(&batch).await.unwrap();
    let given: Vec<JobId> = batch.iter().map(|j| j.id).collect();
    let returned: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(returned, given);
    for job in &jobs {
        assert_eq!(
            (job.status, job.version, job.attempt),
            (Status::Queued, 1, 0)
        );
        assert_eq!(job.payload, json!({"n": 1}));
        assert!(job.started_at.is_none() && job.finished_at.is_none());
    }
    let stored = store.get(&tenant("acme"), given[7]).await.unwrap().unwrap();
    assert_eq!(stored, jobs[7]);
}

async fn a_job_is_claimed_once_under_concurrency(store: Store) {
    let jobs = store
        .insert(
            &(0..10)
                .map(|_| new_job("acme", "noop", Priority::High))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let mut claims = tokio::task::JoinSet::new();
    for job in &jobs {
        for _ in 0..4 {
            let (store, id) = (store.clone(), job.id);
            claims.spawn(async move { store.claim(id).await.unwrap() });
        }
    }
    let mut won = Vec::new();
    while let Some(claim) = claims.join_next().await {
        if let Some(job) = claim.unwrap() {
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

async fn finishing_stores_the_outcome_once(store: Store) {
    let jobs = store
        .insert(&[
            new_job("acme", "echo", Priority::Default),
            new_job("acme", "fail", Priority::Default),
        ])
        .await
        .unwrap();
    assert!(
        store
            .finish(jobs[0].id, Outcome::Succeeded(json!(1)))
            .await
            .unwrap()
            .is_none(),
        "not running yet"
    );
    for job in &jobs {
        store.claim(job.id).await.unwrap().unwrap();
    }
    let progressed = store
        .report_progress(jobs[0].id, &json!({"percent": 50}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (progressed.version, progressed.progress.clone()),
        (3, Some(json!({"percent": 50})))
    );

    let done = store
        .finish(jobs[0].id, Outcome::Succeeded(json!({"ok": true})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.status, done.version), (Status::Succeeded, 4));
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(done.finished_at.is_some() && done.error.is_none());

    let failed = store
        .finish(jobs[1].id, Outcome::Failed("boom".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref(), failed.version),
        (Status::Failed, Some("boom"), 3)
    );

    assert!(
        store
            .finish(jobs[0].id, Outcome::Failed("late".into()))
            .await
            .unwrap()
            .is_none(),
        "finished once"
    );
    assert!(
        store
            .report_progress(jobs[0].id, &json!(1))
            .await
            .unwrap()
            .is_none()
    );
}

async fn only_a_queued_job_of_the_tenant_can_be_cancelled(store: Store) {
    let jobs = store
        .insert(&[
            new_job("acme", "noop", Priority::Low),
            new_job("acme", "noop", Priority::Low),
        ])
        .await
        .unwrap();
    let cancelled = store.cancel(&tenant("acme"), jobs[0].id).await.unwrap();
    assert_eq!(
        (cancelled.status, cancelled.version),
        (Status::Cancelled, 2)
    );
    assert!(
        store.claim(jobs[0].id).await.unwrap().is_none(),
        "a cancelled job never runs"
    );
    assert!(matches!(
        store.cancel(&tenant("acme"), jobs[0].id).await,
        Err(StoreError::NotCancellable {
            status: Status::Cancelled,
            ..
        })
    ));
    store.claim(jobs[1].id).await.unwrap().unwrap();
    assert!(matches!(
        store.cancel(&tenant("acme"), jobs[1].id).await,
        Err(StoreError::NotCancellable {
            status: Status::Running,
            ..
        })
    ));
    assert!(matches!(
        store.cancel(&tenant("globex"), jobs[1].id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.cancel(&tenant("acme"), JobId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn listing_pages_newest_first_per_tenant(store: Store) {
    let mut ids = Vec::new();
    for n in 0..7 {
        let job_type = if n % 2 == 0 { "even" } else { "odd" };
        ids.push(
            store
                .insert(&[new_job("acme", job_type, Priority::Default)])
                .await
                .unwrap()[0]
                .id,
        );
    }
    store
        .insert(&[new_job("globex", "even", Priority::Default)])
        .await
        .unwrap();
    store.claim(ids[3]).await.unwrap().unwrap();

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
    let jobs = store
        .insert(&[
            new_job("acme", "noop", Priority::Low),
            new_job("acme", "noop", Priority::Critical),
            new_job("acme", "noop", Priority::Default),
        ])
        .await
        .unwrap();
    store.claim(jobs[0].id).await.unwrap().unwrap();
    store.claim(jobs[2].id).await.unwrap().unwrap();
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
        [
            (jobs[0].id, Priority::Low),
            (jobs[1].id, Priority::Critical),
            (jobs[2].id, Priority::Default)
        ]
    );
    let again = store.claim(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(
        (again.attempt, again.version),
        (2, 4),
        "a re-run counts as a new attempt"
    );
}

contract!(
    create_returns_queued_jobs_in_the_order_given,
    a_job_is_claimed_once_under_concurrency,
    finishing_stores_the_outcome_once,
    only_a_queued_job_of_the_tenant_can_be_cancelled,
    listing_pages_newest_first_per_tenant,
    recovery_requeues_running_jobs_and_lists_queued_oldest_first,
);

//! Retention: the sweeper deletes finished jobs once kept long enough, and
//! only those; it keeps idempotency keys 24 hours; it records what it deleted
//! for resuming clients; on Postgres one sweeper works at a time and every
//! statement walks an index.

use std::time::{Duration, Instant};

use jobwire_core::{Idempotency, Job, NewJob, Priority, Retention, Status};
use jobwire_store::{Inserted, Outcome, Store, Swept};
use serde_json::json;

use super::{Cleanup, TestStore, claim, insert, new_job, pg_server_url, tenant};

// The stores `contract!` runs each test on (its modules take these names).
async fn postgres() -> TestStore {
    super::postgres().await
}
async fn sqlite() -> TestStore {
    super::sqlite().await
}
async fn sqlite_memory() -> Store {
    super::sqlite_memory().await
}

const DAY: Duration = Duration::from_secs(24 * 3600);
/// How long a test polls the sweep for an outcome before it fails.
const WAIT: Duration = Duration::from_secs(10);

/// Every status's retention zero: whatever finished has expired.
const NOW: Retention = Retention {
    succeeded: Duration::ZERO,
    failed: Duration::ZERO,
    cancelled: Duration::ZERO,
};

fn retained_for(retain: Duration) -> NewJob {
    let mut job = new_job("acme", "noop", Priority::Default);
    job.retain_for = Some(retain);
    job
}

fn keyed(key: &str) -> NewJob {
    let mut job = new_job("acme", "noop", Priority::Default);
    job.idempotency = Some(Idempotency {
        key: key.into(),
        request_hash: "h".into(),
    });
    job
}

/// Runs `job` to `outcome` (`None`: cancels it instead).
async fn end(store: &Store, job: &Job, outcome: Option<Outcome>) -> Job {
    match outcome {
        Some(outcome) => {
            let claim = claim(store, job.id).await;
            store
                .finish(job.id, &claim.token, outcome)
                .await
                .unwrap()
                .unwrap()
        }
        None => store.cancel(&job.tenant_id, job.id).await.unwrap(),
    }
}

async fn exists(store: &Store, job: &Job) -> bool {
    store.get(&job.tenant_id, job.id).await.unwrap().is_some()
}

/// Sweeps until `done` holds (polling: a retention may have to pass first),
/// and returns what the sweeps deleted.
async fn sweep_until(
    store: &Store,
    retention: &Retention,
    mut done: impl AsyncFnMut() -> bool,
) -> Swept {
    let started = Instant::now();
    let mut total = Swept::default();
    loop {
        let swept = store.sweep_expired(retention, 1000).await.unwrap();
        total.succeeded += swept.succeeded;
        total.failed += swept.failed;
        total.cancelled += swept.cancelled;
        if done().await {
            return total;
        }
        assert!(started.elapsed() < WAIT, "the sweep never got there");
        tokio::task::yield_now().await;
    }
}

/// A write to a job that stays, after every other: SQLite never deletes the
/// job at the newest place of the change feed, so none of those under test
/// may be there.
async fn touch_last(store: &Store) -> Job {
    let last = insert(store, &[new_job("acme", "noop", Priority::Default)])
        .await
        .remove(0);
    claim(store, last.id).await.job
}

async fn expired_jobs_go_by_status_and_own_retention_the_rest_stay(store: Store) {
    let retention = Retention {
        succeeded: Duration::ZERO,
        failed: DAY,
        cancelled: Duration::ZERO,
    };
    let jobs = insert(
        &store,
        &[
            new_job("acme", "noop", Priority::Default),
            new_job("acme", "fail", Priority::Default),
            new_job("acme", "noop", Priority::Default),
            retained_for(DAY),
            retained_for(Duration::from_millis(1)),
            retained_for(Duration::from_millis(1)),
            new_job("acme", "noop", Priority::Default),
            new_job("globex", "noop", Priority::Default),
        ],
    )
    .await;
    let succeeded = end(&store, &jobs[0], Some(Outcome::Succeeded(json!(1)))).await;
    let failed = end(&store, &jobs[1], Some(Outcome::Failed("no".into()))).await;
    let cancelled = end(&store, &jobs[2], None).await;
    let kept_own = end(&store, &jobs[3], Some(Outcome::Succeeded(json!(1)))).await;
    let gone_own = end(&store, &jobs[4], Some(Outcome::Failed("no".into()))).await;
    let unfinished = end(&store, &jobs[5], None).await;
    // A job with its own retention that was retried is unfinished again.
    store.retry(&tenant("acme"), unfinished.id).await.unwrap();
    let queued = jobs[6].clone();
    let other_tenant = end(&store, &jobs[7], Some(Outcome::Succeeded(json!(1)))).await;
    touch_last(&store).await;
    let latest = store.latest_change().await.unwrap();

    let (s, c, g) = (&store, &cancelled, &gone_own);
    let swept = sweep_until(&store, &retention, async || {
        !exists(s, c).await && !exists(s, g).await
    })
    .await;
    assert_eq!(
        (swept.succeeded, swept.failed, swept.cancelled),
        (2, 1, 1),
        "acme's and globex's succeeded job, the failed job with 1 ms of its own, the cancelled job"
    );
    for gone in [&succeeded, &cancelled, &gone_own, &other_tenant] {
        assert!(!exists(&store, gone).await, "{:?} expired", gone.status);
    }
    for kept in [&failed, &kept_own, &queued] {
        assert!(
            exists(&store, kept).await,
            "{:?} has not expired",
            kept.status
        );
    }
    let retried = store
        .get(&tenant("acme"), unfinished.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        retried.status,
        Status::Queued,
        "a retried job is not finished"
    );
    assert_eq!(
        kept_own.retain_for,
        Some(DAY),
        "a job says its own retention"
    );
    assert_eq!(succeeded.retain_for, None);

    assert_eq!(
        store.swept_through(&tenant("acme")).await.unwrap(),
        Some(
            gone_own
                .change_seq
                .max(cancelled.change_seq)
                .max(succeeded.change_seq)
        ),
        "the newest place of acme's deleted jobs"
    );
    assert_eq!(
        store.swept_through(&tenant("globex")).await.unwrap(),
        Some(other_tenant.change_seq)
    );
    assert_eq!(store.swept_through(&tenant("initech")).await.unwrap(), None);
    assert_eq!(store.latest_change().await.unwrap(), latest);
    assert_eq!(
        store.sweep_expired(&retention, 1000).await.unwrap(),
        Swept::default(),
        "nothing more to delete"
    );
}

/// Moves a job's creation back by `ago` (only tests write this column).
async fn created_ago(store: &Store, job: &Job, ago: Duration) {
    let at = job.created_at - chrono::Duration::from_std(ago).unwrap();
    match store {
        Store::Postgres(pg) => {
            sqlx::query("update jobs set created_at = $1 where id = $2")
                .bind(at)
                .bind(job.id.as_uuid())
                .execute(pg.pool())
                .await
                .unwrap();
        }
        Store::Sqlite(sqlite) => {
            sqlx::query("update jobs set created_at = ?1 where id = ?2")
                .bind(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                .bind(job.id.to_string())
                .execute(sqlite.pool())
                .await
                .unwrap();
        }
    }
}

async fn a_job_with_an_idempotency_key_stays_24_hours_whatever_its_retention(store: Store) {
    let jobs = insert(
        &store,
        &[
            keyed("fresh"),
            {
                let mut job = keyed("fresh-own");
                job.retain_for = Some(Duration::from_millis(1));
                job
            },
            keyed("old"),
            {
                let mut job = keyed("old-own");
                job.retain_for = Some(Duration::from_millis(1));
                job
            },
            new_job("acme", "noop", Priority::Default),
        ],
    )
    .await;
    // Created 25 hours ago: their keys' 24 hours are over.
    created_ago(&store, &jobs[2], DAY + Duration::from_secs(3600)).await;
    created_ago(&store, &jobs[3], DAY + Duration::from_secs(3600)).await;
    let mut ended = Vec::new();
    for job in &jobs {
        ended.push(end(&store, job, Some(Outcome::Succeeded(json!(1)))).await);
    }
    touch_last(&store).await;

    let (s, old, old_own) = (&store, &ended[2], &ended[3]);
    let swept = sweep_until(&store, &NOW, async || {
        !exists(s, old).await && !exists(s, old_own).await
    })
    .await;
    assert_eq!(
        swept.total(),
        3,
        "the old keyed jobs and the one without a key"
    );
    assert!(!exists(&store, &ended[4]).await);
    for fresh in &ended[..2] {
        assert!(exists(&store, fresh).await, "a key lasts 24 hours");
    }
    let repeat = store.insert(&[keyed("fresh")]).await.unwrap();
    assert_eq!(
        repeat,
        [Inserted::Existing(
            store
                .get(&tenant("acme"), ended[0].id)
                .await
                .unwrap()
                .unwrap()
        )],
        "a repeat inside 24 hours gets the first job"
    );
    assert!(
        matches!(
            store.insert(&[keyed("old")]).await.unwrap()[..],
            [Inserted::Created(_)]
        ),
        "past 24 hours and its retention, the key is free again"
    );
}

/// Statements deleting a batch each: a sweep says when there is more.
async fn a_sweep_deletes_in_batches_and_says_when_there_is_more(store: Store) {
    let jobs = insert(
        &store,
        &(0..25)
            .map(|_| new_job("acme", "noop", Priority::Default))
            .collect::<Vec<_>>(),
    )
    .await;
    for job in &jobs {
        end(&store, job, None).await;
    }
    touch_last(&store).await;
    let first = store.sweep_expired(&NOW, 10).await.unwrap();
    assert_eq!((first.cancelled, first.more), (10, true));
    let second = store.sweep_expired(&NOW, 10).await.unwrap();
    assert_eq!((second.cancelled, second.more), (10, true));
    let last = store.sweep_expired(&NOW, 10).await.unwrap();
    assert_eq!((last.cancelled, last.more), (5, false));
}

/// On SQLite the job at the newest place stays, so that the next write does
/// not take a place a client already saw; the newest place known never goes
/// back on either engine.
async fn the_newest_place_never_goes_back(store: Store) {
    let jobs = insert(
        &store,
        &[
            new_job("acme", "noop", Priority::Default),
            new_job("acme", "noop", Priority::Default),
        ],
    )
    .await;
    end(&store, &jobs[0], None).await;
    let newest = end(&store, &jobs[1], None).await;
    store.sweep_expired(&NOW, 1000).await.unwrap();
    assert_eq!(
        store.latest_change().await.unwrap(),
        Some(newest.change_seq)
    );
    let next = insert(&store, &[new_job("acme", "noop", Priority::Default)])
        .await
        .remove(0);
    assert!(
        next.change_seq > newest.change_seq,
        "a new write takes a new place: {} after {}",
        next.change_seq,
        newest.change_seq
    );
}

/// Each sweep statement walks an index, with a table big enough that the
/// planner would rather scan it if it could not.
async fn every_sweep_statement_walks_an_index(store: Store) {
    let mut batch = Vec::new();
    for i in 0..20_000 {
        let mut job = new_job(["acme", "globex"][i % 2], "noop", Priority::Default);
        if i % 5 == 0 {
            job.retain_for = Some(DAY);
        }
        if i % 7 == 0 {
            job.idempotency = Some(Idempotency {
                key: format!("key-{i}"),
                request_hash: "h".into(),
            });
        }
        batch.push(job);
    }
    for chunk in batch.chunks(1000) {
        store.insert(chunk).await.unwrap();
    }
    // Three in four finished, two days ago, spread over the final statuses.
    match &store {
        Store::Postgres(pg) => {
            for statement in [
                "update jobs set status = (array['succeeded', 'failed', 'cancelled'])\
                 [1 + abs(hashtext(id::text)) % 3], finished_at = now() - interval '2 days', \
                 expires_at = case when retain_ms is not null then now() end \
                 where abs(hashtext(id::text)) % 4 <> 0",
                "analyze jobs",
            ] {
                sqlx::query(statement).execute(pg.pool()).await.unwrap();
            }
        }
        Store::Sqlite(sqlite) => {
            for statement in [
                "update jobs set status = case abs(random()) % 3 when 0 then 'succeeded' \
                 when 1 then 'failed' else 'cancelled' end, \
                 finished_at = '2020-01-01T00:00:00.000000Z', \
                 expires_at = case when retain_ms is not null then 0 end \
                 where abs(random()) % 4 <> 0",
                "analyze",
            ] {
                sqlx::query(statement).execute(sqlite.pool()).await.unwrap();
            }
        }
    }
    let retention = Retention {
        succeeded: Duration::from_secs(3600),
        failed: 7 * DAY,
        cancelled: Duration::from_secs(1),
    };
    let plans = store.explain_sweep(&retention, 1000).await.unwrap();
    // In the order of the steps: own retentions, then per final status
    // without and with a key.
    let indexes = ["jobs_expires_idx"]
        .into_iter()
        .chain(["jobs_retention_idx", "jobs_retention_keyed_idx"].repeat(3));
    assert_eq!(plans.len(), 7);
    for (plan, index) in plans.iter().zip(indexes) {
        assert!(
            plan.contains(&format!("{index} ")),
            "not by {index}:\n{plan}"
        );
        for line in plan.lines() {
            assert!(
                !line.contains("Seq Scan on jobs") && line.trim_start() != "SCAN jobs",
                "a statement scans the table:\n{plan}"
            );
        }
    }
}

contract!(
    expired_jobs_go_by_status_and_own_retention_the_rest_stay,
    a_job_with_an_idempotency_key_stays_24_hours_whatever_its_retention,
    a_sweep_deletes_in_batches_and_says_when_there_is_more,
    the_newest_place_never_goes_back,
    every_sweep_statement_walks_an_index,
);

async fn seed_cancelled(store: &Store, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|_| new_job("acme", "noop", Priority::Default))
        .collect();
    for chunk in jobs.chunks(1000) {
        store.insert(chunk).await.unwrap();
    }
    let Store::Postgres(pg) = store else {
        unreachable!("a Postgres store")
    };
    sqlx::query("update jobs set status = 'cancelled', finished_at = now()")
        .execute(pg.pool())
        .await
        .unwrap();
}

/// Two sweepers on one database never work at once: while one is in the
/// middle of a batch (held up here by a row it must write), the other comes
/// back `busy` without deleting anything; and racing to the end, they delete
/// every expired job once between them.
#[tokio::test]
async fn postgres_two_sweepers_never_work_at_once_and_delete_each_job_once() {
    let owned = postgres().await;
    let Cleanup::Postgres(db) = &owned.cleanup else {
        unreachable!("a Postgres store")
    };
    let url = format!("{}/{db}", pg_server_url());
    let (a, b) = (owned.store.clone(), Store::connect(&url, 4).await.unwrap());
    let Store::Postgres(pg) = &owned.store else {
        unreachable!("a Postgres store")
    };

    // A first sweep gives acme its row of `retention_swept`, which the test
    // then locks, so that sweeper A stops in the middle of its next batch.
    seed_cancelled(&owned.store, 1).await;
    assert_eq!(a.sweep_expired(&NOW, 1000).await.unwrap().cancelled, 1);
    seed_cancelled(&owned.store, 5000).await;
    let mut holder = pg.pool().begin().await.unwrap();
    sqlx::query("select * from retention_swept where tenant_id = 'acme' for update")
        .execute(&mut *holder)
        .await
        .unwrap();
    let held_up = tokio::spawn({
        let a = a.clone();
        async move { a.sweep_expired(&NOW, 1000).await.unwrap() }
    });
    let waiting = async {
        loop {
            let waits: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity where datname = current_database() \
                 and wait_event_type = 'Lock' and query like 'with doomed%'",
            )
            .fetch_one(pg.pool())
            .await
            .unwrap();
            if waits == 1 {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("sweeper A reaches the locked row");
    let meanwhile = b.sweep_expired(&NOW, 1000).await.unwrap();
    assert_eq!(
        meanwhile,
        Swept {
            busy: true,
            ..Swept::default()
        },
        "B does nothing while A works"
    );
    holder.rollback().await.unwrap();
    let first = held_up.await.unwrap();
    assert_eq!(
        (first.cancelled, first.busy),
        (1000, false),
        "A finishes its batch"
    );

    // The rest, racing: each comes back busy whenever the other holds the
    // lock, and goes on until neither finds more.
    let race = |store: Store| async move {
        let (mut deleted, mut busy) = (0, 0);
        loop {
            let swept = store.sweep_expired(&NOW, 500).await.unwrap();
            deleted += swept.total();
            busy += u64::from(swept.busy);
            if !swept.more && !swept.busy {
                return (deleted, busy);
            }
            tokio::task::yield_now().await;
        }
    };
    let ((by_a, _), (by_b, _)) = tokio::time::timeout(WAIT, async {
        tokio::join!(race(a.clone()), race(b.clone()))
    })
    .await
    .expect("the sweepers finish");
    assert_eq!(by_a + by_b, 4000, "every remaining job deleted, once");
    let left: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

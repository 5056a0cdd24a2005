//! IDs the broker holds but nobody will pop: each way one could arise, made
//! to happen with a worker failpoint, ends with the job done and nothing
//! stale left in Redis. The jobs are spread over [`TENANTS`] tenants (each
//! with its own queue list and turn), and each tenant's jobs are checked.

use std::time::Duration;

use jobwire_worker::Failpoint;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{Options, TestApp, Ws, spawn_app_with};

/// Tenants each scenario's jobs are spread over.
const TENANTS: usize = 25;

fn tenant_name(n: usize) -> String {
    format!("tenant-{n:02}")
}

/// A job's `(status, attempt)` in the store, read as its tenant's.
async fn row_of(app: &TestApp, tenant: &str, id: &str) -> (String, i32) {
    let job = app
        .store
        .get(
            &tenant.parse().expect("tenant"),
            id.parse().expect("job id"),
        )
        .await
        .expect("store answers")
        .expect("the job exists under its tenant");
    (job.status.to_string(), job.attempt)
}

/// The pending set and every worker's processing list, as `redis-cli` sees them.
async fn held_ids(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let mut redis = app
        .redis()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let keys = jobwire_broker::Keys::new(&app.prefix);
    let pending: Vec<String> = redis.smembers(keys.pending()).await.expect("SMEMBERS");
    let lists: Vec<String> = redis.keys(keys.processing("*")).await.expect("KEYS");
    let mut processing = Vec::new();
    for list in lists {
        let ids: Vec<String> = redis.lrange(&list, 0, -1).await.expect("LRANGE");
        processing.extend(ids);
    }
    (pending, processing)
}

/// Queues a job of each of [`TENANTS`] tenants, then starts a worker that
/// fails at `failpoint` (its first pop takes IDs of several tenants at
/// once), and waits for every job to succeed, seen by its own tenant's
/// client and run once, and for Redis to hold nothing of them.
async fn jobs_of_many_tenants_survive(failpoint: Failpoint) {
    let app = spawn_app_with(Options {
        worker: false,
        worker_failpoint: Some(failpoint),
        ..Options::default()
    })
    .await;
    let mut jobs: Vec<(String, Ws, String)> = Vec::new();
    for n in 0..TENANTS {
        let tenant = tenant_name(n);
        let ws = app.ws(&tenant).await;
        let id = app.create(&tenant, json!({"type": "noop"})).await;
        jobs.push((tenant, ws, id));
    }
    app.start_worker();
    // Every client read at once: one left unread for long would be dropped as silent.
    let done = jobs
        .iter_mut()
        .map(|(_, ws, id)| ws.until_status(id, "succeeded"));
    futures_util::future::join_all(done).await;
    for (tenant, _, id) in &jobs {
        let (status, attempt) = row_of(&app, tenant, id).await;
        assert_eq!(
            (status.as_str(), attempt),
            ("succeeded", 1),
            "{tenant}'s job ran once"
        );
    }
    let clean = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let held = held_ids(&app).await;
            if held.0.is_empty() && held.1.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let held = held_ids(&app).await;
    assert!(
        clean.is_ok(),
        "Redis still holds the job's ID: pending {:?}, processing {:?}",
        held.0,
        held.1
    );
}

#[tokio::test]
async fn a_pop_whose_reply_is_lost_leaves_no_job_stranded() {
    jobs_of_many_tenants_survive(Failpoint::LosePopReply).await;
}

#[tokio::test]
async fn a_failed_acknowledgement_leaves_no_stale_entry() {
    jobs_of_many_tenants_survive(Failpoint::FailFirstAck).await;
}

/// Without a fault, re-dispatch has nothing to do: a backlog that workers
/// drain while the sweep walks it (every job queued longer than the
/// re-dispatch age) is never mistaken for lost IDs and enqueued twice.
#[tokio::test]
async fn re_dispatch_does_not_fire_without_a_fault() {
    use std::process::Stdio;

    use tokio::io::AsyncReadExt;

    let app = spawn_app_with(Options::without_worker()).await;
    // 5,000 jobs, 200 for each tenant.
    let mut lasts: Vec<(String, Ws, String)> = Vec::new();
    for n in 0..TENANTS {
        let tenant = tenant_name(n);
        let ws = app.ws(&tenant).await;
        let jobs: Vec<serde_json::Value> = (0..200).map(|_| json!({"type": "noop"})).collect();
        let (status, body) = app
            .post(&tenant, "/v1/jobs/batch", json!({"jobs": jobs}))
            .await;
        assert_eq!(status, 201, "{body}");
        let last = body["jobs"][199]["id"].as_str().expect("id").to_owned();
        lasts.push((tenant, ws, last));
    }
    // A short re-dispatch age and few slots: the sweep walks a backlog older
    // than the age, all the time the worker drains it.
    let mut worker = crate::processes::command(env!("CARGO_BIN_EXE_jobwire-worker"), &app)
        .env("JOBWIRE_REDISPATCH_AFTER", "100ms")
        .env("JOBWIRE_WORKER_CONCURRENCY", "2")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jobwire-worker");
    // Every client read at once: one left unread for long would be dropped as silent.
    let done = lasts
        .iter_mut()
        .map(|(_, ws, last)| ws.until_status(last, "succeeded"));
    futures_util::future::join_all(done).await;
    for (tenant, _, _) in &lasts {
        let (_, queued) = app.get(tenant, "/v1/jobs?status=queued&limit=1").await;
        assert_eq!(queued["jobs"], json!([]), "every job of {tenant} ran");
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker.id().expect("running") as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let mut log = String::new();
    let mut stderr = worker.stderr.take().expect("piped stderr");
    tokio::time::timeout(Duration::from_secs(15), stderr.read_to_string(&mut log))
        .await
        .expect("the worker stops")
        .expect("stderr readable");
    assert!(
        !log.contains("missing from the broker"),
        "re-dispatch fired without a fault:\n{log}"
    );
}

/// An API that dies in the middle of enqueueing a committed job (its ID
/// marked pending, not yet pushed) leaves nothing behind in Redis: the
/// enqueue is one transaction, so re-dispatch finds the job and queues it.
#[tokio::test]
async fn an_api_dying_mid_enqueue_leaves_no_id_pending_but_unqueued() {
    use tokio::io::AsyncBufReadExt;

    let app = spawn_app_with(Options::default()).await;
    let mut doomed = crate::processes::command(env!("CARGO_BIN_EXE_jobwire-api"), &app)
        .env("JOBWIRE_FAILPOINT", "exit-mid-enqueue")
        .spawn()
        .expect("start jobwire-api");
    let stdout = doomed.stdout.take().expect("piped stdout");
    let line = tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .expect("stdout readable")
        .expect("the address line");
    let addr = line
        .rsplit("http://")
        .next()
        .expect("an address")
        .to_owned();
    crate::support::wait_ready(&app.http, &format!("http://{addr}/readyz")).await;

    // One create per tenant, all at once: the API commits them (one insert
    // for those that arrive together) and dies inside the first enqueue.
    let creates = (0..TENANTS).map(|n| {
        app.http
            .post(format!("http://{addr}/v1/jobs"))
            .bearer_auth(app.token(&tenant_name(n)))
            .json(&json!({"type": "noop"}))
            .send()
    });
    for died in futures_util::future::join_all(creates).await {
        assert!(died.is_err(), "the API died before answering: {died:?}");
    }
    let status = tokio::time::timeout(crate::support::WAIT, doomed.wait())
        .await
        .expect("the API exits at its failpoint")
        .expect("exit status");
    assert_eq!(status.code(), Some(86));

    // What committed (at least the first create) is queued by re-dispatch
    // and run, each job as its own tenant's; what did not, does not exist.
    let filter = jobwire_store::ListFilter {
        status: None,
        job_type: None,
        before: None,
        limit: 10,
    };
    let mut committed = 0;
    for n in 0..TENANTS {
        let tenant = tenant_name(n);
        let jobs = app
            .store
            .list(&tenant.parse().expect("tenant"), &filter)
            .await
            .expect("store");
        assert!(jobs.jobs.len() <= 1, "{tenant} created one job at most");
        for job in &jobs.jobs {
            let id = job.id.to_string();
            crate::processes::wait_for_status_of(&app, &tenant, &id, "succeeded").await;
            committed += 1;
        }
    }
    eprintln!("{committed} of {TENANTS} tenants' creates committed before the API died");
    assert!(
        committed >= 1,
        "the create that reached the failpoint committed"
    );
    let held = held_ids(&app).await;
    assert!(held.0.is_empty() && held.1.is_empty(), "{held:?}");
}

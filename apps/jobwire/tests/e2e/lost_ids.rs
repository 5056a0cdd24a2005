//! IDs the broker holds but nobody will pop: each way one could arise, made
//! to happen with a worker failpoint, ends with the job done and nothing
//! stale left in Redis.

use std::time::Duration;

use jobwire_worker::Failpoint;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{Options, TestApp, spawn_app_with};

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

/// Runs one job through a worker that fails at `failpoint`, and waits for
/// it to succeed and for Redis to hold nothing of it.
async fn one_job_survives(failpoint: Failpoint) {
    let app = spawn_app_with(Options {
        worker_failpoint: Some(failpoint),
        ..Options::default()
    })
    .await;
    let mut ws = app.ws("acme").await;
    let id = app.create("acme", json!({"type": "noop"})).await;
    ws.until_status(&id, "succeeded").await;
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
    one_job_survives(Failpoint::LosePopReply).await;
}

#[tokio::test]
async fn a_failed_acknowledgement_leaves_no_stale_entry() {
    one_job_survives(Failpoint::FailFirstAck).await;
}

/// Without a fault, re-dispatch has nothing to do: a backlog that workers
/// drain while the sweep walks it (every job queued longer than the
/// re-dispatch age) is never mistaken for lost IDs and enqueued twice.
#[tokio::test]
async fn re_dispatch_does_not_fire_without_a_fault() {
    use std::process::Stdio;

    use tokio::io::AsyncReadExt;

    let app = spawn_app_with(Options::without_worker()).await;
    let mut ws = app.ws("acme").await;
    let mut last = String::new();
    for _ in 0..5 {
        let jobs: Vec<serde_json::Value> = (0..1000).map(|_| json!({"type": "noop"})).collect();
        let (status, body) = app
            .post("acme", "/v1/jobs/batch", json!({"jobs": jobs}))
            .await;
        assert_eq!(status, 201, "{body}");
        last = body["jobs"][999]["id"].as_str().expect("id").to_owned();
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
    ws.until_status(&last, "succeeded").await;
    let (_, queued) = app.get("acme", "/v1/jobs?status=queued&limit=1").await;
    assert_eq!(queued["jobs"], json!([]), "every job ran");

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

    let died = app
        .http
        .post(format!("http://{addr}/v1/jobs"))
        .bearer_auth(app.token("acme"))
        .json(&json!({"type": "noop"}))
        .send()
        .await;
    assert!(died.is_err(), "the API died before answering: {died:?}");
    let status = tokio::time::timeout(crate::support::WAIT, doomed.wait())
        .await
        .expect("the API exits at its failpoint")
        .expect("exit status");
    assert_eq!(status.code(), Some(86));

    // The job committed; re-dispatch queues it and the worker runs it.
    let filter = jobwire_store::ListFilter {
        status: None,
        job_type: None,
        before: None,
        limit: 10,
    };
    let jobs = app
        .store
        .list(&"acme".parse().expect("tenant"), &filter)
        .await
        .expect("store");
    assert_eq!(jobs.jobs.len(), 1, "the job committed");
    let id = jobs.jobs[0].id.to_string();
    crate::processes::wait_for_status(&app, &id, "succeeded").await;
    let held = held_ids(&app).await;
    assert!(held.0.is_empty() && held.1.is_empty(), "{held:?}");
}

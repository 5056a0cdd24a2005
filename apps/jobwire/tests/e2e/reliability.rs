//! At-least-once jobs: retries, delays, timeouts, cancellation of running
//! jobs, idempotency, and updates that converge (resume, subscribe).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Backend, Options, Ws, job, millis_between, spawn_app_with, statuses};

async fn failed_jobs_retry_with_backoff_then_dead_letter_and_retry_by_hand(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let id = app
        .create(
            "acme",
            json!({"type": "fail", "payload": {"message": "nope"}, "maxAttempts": 3}),
        )
        .await;
    let updates = ws.until_status(&id, "failed").await;
    assert_eq!(
        statuses(&updates),
        [
            "queued",
            "running",
            "scheduled",
            "queued",
            "running",
            "scheduled",
            "queued",
            "running",
            "failed"
        ]
    );
    assert!(
        updates
            .iter()
            .filter(|u| u["status"] == "scheduled")
            .all(|u| u["runAt"].is_string())
    );
    let last = updates.last().unwrap();
    assert_eq!(
        (last["attempt"].as_i64(), last["error"].as_str()),
        (Some(3), Some("nope"))
    );

    assert!(
        updates.iter().all(|u| u.get("attemptErrors").is_none()),
        "updates stay small: the history is read with the job"
    );

    let (_, dead) = app.get("acme", "/v1/jobs?status=failed").await;
    assert_eq!(
        dead["jobs"][0]["id"],
        id.as_str(),
        "the dead letter lists it"
    );
    assert_eq!(
        dead["jobs"][0]["attemptErrors"].as_array().unwrap().len(),
        3
    );
    let (_, failed) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        attempt_errors(&failed),
        [(1, "nope"), (2, "nope"), (3, "nope")],
        "every failed attempt, newest last: {failed}"
    );
    let history = failed["attemptErrors"].as_array().unwrap();
    assert!(
        history
            .iter()
            .all(|e| e["startedAt"].is_string() && e["endedAt"].is_string()),
        "{failed}"
    );
    assert_eq!(history[2]["endedAt"], failed["finishedAt"]);
    assert_eq!(history[2]["startedAt"], failed["startedAt"]);

    let (code, again) = app
        .post("acme", &format!("/v1/jobs/{id}/retry"), json!({}))
        .await;
    assert_eq!(
        (code, again["status"].as_str(), again["attempt"].as_i64()),
        (200, Some("queued"), Some(0))
    );
    assert_eq!(
        again["attemptErrors"], failed["attemptErrors"],
        "a retry by hand keeps the history"
    );
    let rerun = ws.until_status(&id, "running").await;
    assert_eq!(rerun.last().unwrap()["attempt"], 1);
    ws.until_status(&id, "failed").await;
    let (_, failed_again) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        attempt_errors(&failed_again),
        [
            (1, "nope"),
            (2, "nope"),
            (3, "nope"),
            (1, "nope"),
            (2, "nope"),
            (3, "nope")
        ],
        "the rerun's attempts follow the first run's: {failed_again}"
    );

    let ok = app.create("acme", job("noop", json!({}))).await;
    ws.until_status(&ok, "succeeded").await;
    let (code, problem) = app
        .post("acme", &format!("/v1/jobs/{ok}/retry"), json!({}))
        .await;
    assert_eq!(
        code, 409,
        "only failed or cancelled jobs are retried: {problem}"
    );
}

/// `(attempt, error)` of each entry of a job's `attemptErrors`.
fn attempt_errors(job: &Value) -> Vec<(i64, &str)> {
    job["attemptErrors"]
        .as_array()
        .expect("a job has attemptErrors")
        .iter()
        .map(|e| (e["attempt"].as_i64().unwrap(), e["error"].as_str().unwrap()))
        .collect()
}

async fn delayed_jobs_wait_for_their_time(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let (code, created) = app
        .post("acme", "/v1/jobs", json!({"type": "noop", "delayMs": 400}))
        .await;
    assert_eq!((code, created["status"].as_str()), (201, Some("scheduled")));
    let id = created["id"].as_str().unwrap().to_owned();
    ws.until_status(&id, "succeeded").await;
    let (_, done) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert!(
        millis_between(&done, "createdAt", "startedAt") >= 400,
        "ran after its delay: {done}"
    );

    let (code, _) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "noop", "delayMs": 1, "runAt": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(code, 422, "runAt or delayMs, not both");
    let (code, at) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "noop", "runAt": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        (code, at["status"].as_str(), at["runAt"].as_str()),
        (201, Some("scheduled"), Some("2099-01-01T00:00:00Z"))
    );
}

async fn a_timed_out_attempt_is_cancelled_and_fails(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let id = app
        .create(
            "acme",
            json!({"type": "sleep", "payload": {"ms": 30000}, "timeoutMs": 200, "maxAttempts": 1}),
        )
        .await;
    let last = ws.until_status(&id, "failed").await.pop().unwrap();
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 200 ms"),
        "{last}"
    );
    let (_, done) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert!(
        millis_between(&done, "startedAt", "finishedAt") < 5000,
        "cut short: {done}"
    );
}

async fn cancelling_a_running_job_stops_its_handler(backend: Backend) {
    let app = spawn_app_with(Options {
        worker_concurrency: 1,
        ..Options::on(backend)
    })
    .await;
    let mut ws = app.ws("acme").await;
    let long = app.create("acme", job("sleep", json!({"ms": 60000}))).await;
    ws.until_status(&long, "running").await;
    let waiting = app.create("acme", job("noop", json!({}))).await;

    let (code, body) = app
        .post("acme", &format!("/v1/jobs/{long}/cancel"), json!({}))
        .await;
    assert_eq!((code, body["status"].as_str()), (200, Some("cancelled")));
    // From the cancellation's commit: the request's own time is not the worker's.
    let cancelled_at = Instant::now();
    ws.until_status(&long, "cancelled").await;
    // The only slot frees when the handler stops: the waiting job starts.
    ws.until_status(&waiting, "running").await;
    let reached = cancelled_at.elapsed();
    println!("cancellation reached the worker and freed its slot in {reached:?}");
    assert!(
        reached < Duration::from_secs(1),
        "within 1 s, took {reached:?}"
    );
    assert_eq!(
        app.row(&long).await.0,
        "cancelled",
        "the stopped attempt did not overwrite it"
    );
}

async fn an_idempotency_key_creates_once(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let send = |body: Value| {
        let request = app
            .http
            .post(app.url("/v1/jobs"))
            .bearer_auth(app.token("acme"))
            .header("Idempotency-Key", "order-7")
            .json(&body);
        async move { crate::support::read(request.send().await.unwrap()).await }
    };
    let (first_code, first) = send(json!({"type": "echo", "payload": {"n": 1}})).await;
    let (again_code, again) = send(json!({"type": "echo", "payload": {"n": 1}})).await;
    assert_eq!((first_code, again_code), (201, 200));
    assert_eq!(first["id"], again["id"]);
    let (code, problem) = send(json!({"type": "echo", "payload": {"n": 2}})).await;
    assert_eq!(code, 409, "same key, other body: {problem}");
    let (code, by_field) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "echo", "payload": {"n": 1}, "idempotencyKey": "order-7"}),
        )
        .await;
    assert_eq!((code, &by_field["id"]), (200, &first["id"]));
    let (code, other_tenant) = app
        .post(
            "globex",
            "/v1/jobs",
            json!({"type": "echo", "idempotencyKey": "order-7"}),
        )
        .await;
    assert_eq!(code, 201, "keys are per tenant: {other_tenant}");
    assert_eq!(app.job_count().await, 1);
    assert_eq!(app.queued_ids().await, 2, "the repeat queued nothing");
}

async fn a_reconnecting_client_resumes_from_its_cursor_without_a_gap(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let first = app.create("acme", job("noop", json!({}))).await;
    let cursor = ws.until_status(&first, "succeeded").await.pop().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(ws);

    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(app.create("acme", job("noop", json!({}))).await);
    }
    let other = app.create("globex", job("noop", json!({}))).await;
    for id in missed.iter().chain([&other]) {
        crate::processes::wait_for_status_of(
            &app,
            if id == &other { "globex" } else { "acme" },
            id,
            "succeeded",
        )
        .await;
    }

    let mut back = Ws::resume(app.addr, &app.token("acme"), &cursor).await;
    let (replayed, resumed) = back.updates_until_event("resumed").await;
    let ids: Vec<&str> = replayed
        .iter()
        .map(|u| u["jobId"].as_str().unwrap())
        .collect();
    // Every change missed (in the order of the changes); a change at or just
    // before the cursor may come again (the client keeps the newest version).
    let mut missed_replayed: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| missed.iter().any(|m| m == id))
        .collect();
    missed_replayed.sort();
    let mut expected: Vec<&str> = missed.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(missed_replayed, expected);
    assert!(
        ids.iter()
            .all(|id| missed.iter().any(|m| m == id) || *id == first)
    );
    assert!(
        replayed
            .iter()
            .all(|u| u["status"] == "succeeded" && u["tenantId"] == "acme")
    );
    assert_eq!(resumed["replayed"].as_u64(), Some(replayed.len() as u64));
    let live = app.create("acme", job("noop", json!({}))).await;
    back.until_status(&live, "succeeded").await;
}

async fn a_subscribe_answers_with_the_current_state_first(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let id = app.create("acme", job("noop", json!({}))).await;
    crate::processes::wait_for_status_of(&app, "acme", &id, "succeeded").await;
    let mut ws = app.ws("acme").await;
    ws.send(json!({"type": "subscribe", "jobIds": [id]})).await;
    assert_eq!(ws.next_frame().await.unwrap()["event"], "subscribed");
    let current = ws.next_update().await;
    assert_eq!(
        (current["jobId"].as_str(), current["status"].as_str()),
        (Some(id.as_str()), Some("succeeded"))
    );
}

/// A client that connected and heard nothing before its connection dropped
/// still catches up: the `connected` frame's cursor is one to resume from.
async fn a_client_that_heard_nothing_resumes_from_its_connected_cursor(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    app.create("acme", json!({"type": "noop"})).await;
    let (ws, hello) = Ws::connect_hello(app.addr, &app.token("acme")).await;
    let cursor = hello["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{hello}"))
        .to_owned();
    drop(ws);
    let missed = app.create("acme", json!({"type": "noop"})).await;

    let mut back = Ws::resume(app.addr, &app.token("acme"), &cursor).await;
    let (replayed, _) = back.updates_until_event("resumed").await;
    assert!(
        replayed
            .iter()
            .any(|u| u["jobId"] == missed.as_str() && u["status"] == "queued"),
        "the job created while it was away is replayed: {replayed:?}"
    );
}

in_both_modes!(
    a_client_that_heard_nothing_resumes_from_its_connected_cursor,
    failed_jobs_retry_with_backoff_then_dead_letter_and_retry_by_hand,
    delayed_jobs_wait_for_their_time,
    a_timed_out_attempt_is_cancelled_and_fails,
    cancelling_a_running_job_stops_its_handler,
    an_idempotency_key_creates_once,
    a_reconnecting_client_resumes_from_its_cursor_without_a_gap,
    a_subscribe_answers_with_the_current_state_first,
);

/// The resume window counts jobs changed since the cursor: 10 000 are
/// replayed; one more, and the client is told so and gets a snapshot.
#[tokio::test]
async fn the_resume_window_replays_10000_changed_jobs_and_resets_past_that() {
    let app = spawn_app_with(Options::without_worker()).await;
    for _ in 0..10 {
        let jobs: Vec<Value> = (0..1000).map(|_| json!({"type": "noop"})).collect();
        let (code, _) = app
            .post("acme", "/v1/jobs/batch", json!({"jobs": jobs}))
            .await;
        assert_eq!(code, 201);
    }
    let mut ws = Ws::resume(app.addr, &app.token("acme"), "0").await;
    let (replayed, resumed) = ws.updates_until_event("resumed").await;
    // Live updates of the creates may still be arriving too, so a job can come twice.
    let jobs: std::collections::HashSet<&str> = replayed
        .iter()
        .map(|u| u["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(
        (jobs.len(), resumed["replayed"].as_u64()),
        (10_000, Some(10_000))
    );
    drop(ws);

    app.create("acme", json!({"type": "noop"})).await;
    let mut ws = Ws::resume(app.addr, &app.token("acme"), "0").await;
    let (before, reset) = ws.updates_until_event("reset").await;
    assert!(before.is_empty() && reset["detail"].as_str().unwrap().contains("resume window"));
    let (snapshot, done) = ws.updates_until_event("snapshot").await;
    assert_eq!((snapshot.len(), done["jobs"].as_u64()), (500, Some(500)));
}

/// A resume starts at the cursor (less a fixed overlap), not at the start:
/// with more jobs before the cursor than the overlap, the oldest are not
/// replayed, and every job changed after it is.
#[tokio::test]
async fn a_resume_starts_from_the_cursor_not_the_beginning() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut early = Vec::new();
    for _ in 0..2 {
        let jobs: Vec<Value> = (0..1000).map(|_| json!({"type": "noop"})).collect();
        let (code, body) = app
            .post("acme", "/v1/jobs/batch", json!({"jobs": jobs}))
            .await;
        assert_eq!(code, 201);
        early.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|job| job["id"].as_str().unwrap().to_owned()),
        );
    }
    let mut ws = app.ws("acme").await;
    let marker = app.create("acme", json!({"type": "noop"})).await;
    let cursor = ws.until_status(&marker, "queued").await.pop().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(ws);
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(app.create("acme", json!({"type": "noop"})).await);
    }

    let mut back = Ws::resume(app.addr, &app.token("acme"), &cursor).await;
    let (replayed, resumed) = back.updates_until_event("resumed").await;
    let ids: Vec<&str> = replayed
        .iter()
        .map(|u| u["jobId"].as_str().unwrap())
        .collect();
    for id in &missed {
        assert!(ids.contains(&id.as_str()), "missed job {id} replayed");
    }
    assert!(
        !ids.contains(&early[0].as_str()),
        "the oldest job, 2,000 changes before the cursor, is not replayed"
    );
    assert!(
        ids.len() <= 1_000 + 1 + missed.len(),
        "at most the overlap before the cursor: {} replayed",
        ids.len()
    );
    assert_eq!(resumed["replayed"].as_u64(), Some(ids.len() as u64));
}

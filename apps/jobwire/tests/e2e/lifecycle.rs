//! A job's life as the user sees it: over WebSocket, over Redis, in Postgres.

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::{Backend, Options, WAIT, job, spawn_app, spawn_app_with, statuses};

async fn websocket_sees_queued_running_succeeded_in_order_and_postgres_agrees(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;

    let id = app.create("acme", job("noop", json!({}))).await;
    let updates = ws.until_status(&id, "succeeded").await;

    assert_eq!(statuses(&updates), ["queued", "running", "succeeded"]);
    let versions: Vec<i64> = updates
        .iter()
        .map(|u| u["version"].as_i64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions grow: {versions:?}"
    );
    let (status, version, attempt) = app.row(&id).await;
    assert_eq!(status, "succeeded");
    assert_eq!(version, *versions.last().unwrap());
    assert_eq!(attempt, 1);
    let (code, body) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "succeeded");
}

#[tokio::test]
async fn a_raw_redis_subscriber_reads_every_update_as_json() {
    let app = spawn_app().await;
    let mut pubsub = app.redis().get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe(format!("{}job_updates", app.prefix))
        .await
        .expect("SUBSCRIBE");
    let mut messages = pubsub.on_message();

    let id = app.create("acme", job("sleep", json!({"ms": 50}))).await;
    let mut updates: Vec<Value> = Vec::new();
    while updates.last().is_none_or(|u| u["status"] != "succeeded") {
        let message = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("an update in time")
            .expect("subscription open");
        let text: String = message.get_payload().expect("text payload");
        updates.push(serde_json::from_str(&text).expect("readable JSON"));
    }

    assert_eq!(
        statuses(&updates),
        ["queued", "running", "running", "succeeded"]
    );
    for update in &updates {
        assert_eq!(update["tenantId"], "acme");
        assert_eq!(update["jobId"], id.as_str());
        assert_eq!(update["type"], "sleep");
        assert!(
            update["version"].is_i64() && update["attempt"].is_i64(),
            "{update}"
        );
        assert!(update["error"].is_null(), "{update}");
        let at = update["at"].as_str().expect("at");
        assert!(chrono_like_rfc3339(at), "`at` is RFC 3339: {at}");
    }
    assert_eq!(updates[2]["progress"], json!({"percent": 50}));
}

/// `2026-11-26T22:32:39.719492Z`-shaped.
fn chrono_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && s.ends_with('Z')
}

async fn fail_unhandled_type_echo_and_progress_end_as_the_user_expects(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;

    let failing = app
        .create("acme", job("fail", json!({"message": "card declined"})))
        .await;
    let last = ws.until_status(&failing, "failed").await.pop().unwrap();
    assert_eq!(last["error"], "card declined");

    let orphan = app.create("acme", job("no-such-handler", json!({}))).await;

    let echo = app
        .create("acme", job("echo", json!({"hello": [1, 2]})))
        .await;
    ws.until_status(&echo, "succeeded").await;
    let (_, waiting) = app.get("acme", &format!("/v1/jobs/{orphan}")).await;
    assert_eq!(
        waiting["status"], "queued",
        "no worker runs its type: it waits, not failed"
    );
    let (_, body) = app.get("acme", &format!("/v1/jobs/{echo}")).await;
    assert_eq!(body["result"], json!({"hello": [1, 2]}));

    let slow = app.create("acme", job("sleep", json!({"ms": 100}))).await;
    let updates = ws.until_status(&slow, "succeeded").await;
    assert!(
        updates
            .iter()
            .any(|u| u["status"] == "running" && u["progress"] == json!({"percent": 50})),
        "progress reached the WebSocket: {updates:?}"
    );
}

async fn a_cancelled_queued_job_never_runs_and_the_client_sees_cancelled(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let mut ws = app.ws("acme").await;

    let doomed = app.create("acme", job("noop", json!({}))).await;
    let (code, body) = app
        .post("acme", &format!("/v1/jobs/{doomed}/cancel"), json!({}))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(
        statuses(&ws.until_status(&doomed, "cancelled").await),
        ["queued", "cancelled"]
    );

    // A worker starts; a job created after the cancelled one succeeds, so the
    // worker has popped past the cancelled ID (FIFO) and left it alone.
    app.start_worker();
    let later = app.create("acme", job("noop", json!({}))).await;
    let seen_before_later_finished = {
        let mut seen = Vec::new();
        loop {
            let update = ws.next_update().await;
            let done = update["jobId"] == later.as_str() && update["status"] == "succeeded";
            seen.push(update);
            if done {
                break seen;
            }
        }
    };
    assert!(
        !seen_before_later_finished
            .iter()
            .any(|u| u["jobId"] == doomed.as_str()),
        "the cancelled job never changed again"
    );
    assert_eq!(app.row(&doomed).await, ("cancelled".into(), 2, 0));

    let (code, body) = app
        .post("acme", &format!("/v1/jobs/{later}/cancel"), json!({}))
        .await;
    assert_eq!(code, 409, "a finished job cannot be cancelled: {body}");
    assert!(body["detail"].as_str().unwrap().contains("succeeded"));
}

/// Batches and single creates sent at once are written together (one
/// insert per flush): each request gets its own jobs back, none is refused,
/// and the tenant's listing holds every one of them.
async fn concurrent_batches_and_creates_are_each_stored_and_answered(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    // Three batches of 900 would make one insert of 2,700 jobs, past SQLite's
    // limit of parameters per statement, if the intake took them together.
    let batch = json!({"jobs": vec![job("noop", json!({"n": 1})); 900]});
    let batches = (0..4).map(|_| app.post("acme", "/v1/jobs/batch", batch.clone()));
    let singles = (0..100).map(|_| app.post("acme", "/v1/jobs", job("noop", json!({}))));
    let (batches, singles) = tokio::join!(
        futures_util::future::join_all(batches),
        futures_util::future::join_all(singles)
    );
    let mut created = std::collections::HashSet::new();
    for (code, body) in batches {
        assert_eq!(code, 201, "{body}");
        let jobs = body["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 900);
        created.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
    }
    for (code, body) in singles {
        assert_eq!(code, 201, "{body}");
        created.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created.len(), 3700, "every request got jobs of its own");

    let mut listed = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let (code, page) = app
            .get("acme", &format!("/v1/jobs?limit=500&cursor={cursor}"))
            .await;
        assert_eq!(code, 200);
        listed.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(listed, created);
}

in_both_modes!(
    websocket_sees_queued_running_succeeded_in_order_and_postgres_agrees,
    fail_unhandled_type_echo_and_progress_end_as_the_user_expects,
    a_cancelled_queued_job_never_runs_and_the_client_sees_cancelled,
    concurrent_batches_and_creates_are_each_stored_and_answered,
);

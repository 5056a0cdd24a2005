//! Remote workers over HTTP: the test is the worker, speaking the protocol
//! (`/v1/worker/…`) over a real socket to a real API, as a worker in any
//! language would.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Backend, Options, WAIT, job, spawn_app_with};

/// Leases as `token` with `body`, expecting 200; returns the jobs.
async fn lease(app: &crate::support::TestApp, token: &str, body: Value) -> Vec<Value> {
    let (status, jobs) = app.post_with(token, "/v1/worker/lease", body).await;
    assert_eq!(status, 200, "{jobs}");
    jobs.as_array().unwrap().clone()
}

async fn report(
    app: &crate::support::TestApp,
    token: &str,
    id: &str,
    what: &str,
    body: Value,
) -> (u16, Value) {
    app.post_with(token, &format!("/v1/worker/jobs/{id}/{what}"), body)
        .await
}

async fn a_remote_workers_job_goes_through_its_life_and_the_tenant_sees_it(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    let mut ws = app.ws("acme").await;
    let worker = app.worker_token("py-1", &[], &["remote.echo"]);
    let id = app
        .create("acme", job("remote.echo", json!({"text": "hi"})))
        .await;

    let jobs = lease(&app, &worker, json!({"max": 5, "waitMs": 5000})).await;
    assert_eq!(jobs.len(), 1);
    let leased = &jobs[0];
    assert_eq!(leased["id"], id.as_str());
    assert_eq!(leased["tenantId"], "acme");
    assert_eq!(leased["type"], "remote.echo");
    assert_eq!(leased["payload"], json!({"text": "hi"}));
    assert_eq!(leased["attempt"], 1);
    assert!(leased["leaseExpiresAt"].is_string(), "{leased}");
    let token = leased["leaseToken"].as_str().unwrap().to_owned();
    ws.until_status(&id, "running").await;

    let (status, beat) = report(
        &app,
        &worker,
        &id,
        "heartbeat",
        json!({"leaseToken": token}),
    )
    .await;
    assert_eq!((status, &beat["cancelled"]), (200, &json!(false)), "{beat}");
    let (status, _) = report(
        &app,
        &worker,
        &id,
        "progress",
        json!({"leaseToken": token, "progress": {"percent": 50}}),
    )
    .await;
    assert_eq!(status, 204);
    let progress = ws.next_update().await;
    assert_eq!(progress["progress"], json!({"percent": 50}), "{progress}");
    let (status, _) = report(
        &app,
        &worker,
        &id,
        "complete",
        json!({"leaseToken": token, "result": {"echoed": "hi"}}),
    )
    .await;
    assert_eq!(status, 204);
    let done = ws.until_status(&id, "succeeded").await.pop().unwrap();
    assert_eq!(done["result"], json!({"echoed": "hi"}));
    let (_, stored) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(stored["result"], json!({"echoed": "hi"}));
    let (status, _) = report(&app, &worker, &id, "complete", json!({"leaseToken": token})).await;
    assert_eq!(status, 409, "a second completion changes nothing");
}

async fn a_remote_worker_that_stops_heartbeating_loses_its_job_and_its_late_complete_gets_409(
    backend: Backend,
) {
    // The built-in worker (other types) is what sees lapsed leases.
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let (silent, other) = (
        app.worker_token("silent", &[], &["remote.slow"]),
        app.worker_token("other", &[], &["remote.slow"]),
    );
    let body = json!({"type": "remote.slow", "maxAttempts": 3});
    let id = app.create("acme", body).await;
    let first = lease(&app, &silent, json!({"leaseMs": 1000, "waitMs": 5000})).await;
    let stale = first[0]["leaseToken"].as_str().unwrap().to_owned();

    // It never heartbeats: the lease lapses, and the job runs again elsewhere.
    let second = lease(&app, &other, json!({"waitMs": 15000})).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["id"], id.as_str());
    assert_eq!(second[0]["attempt"], 2);
    for what in ["complete", "heartbeat", "progress"] {
        let body = json!({"leaseToken": stale, "progress": 1});
        let body = if what == "progress" {
            body
        } else {
            json!({"leaseToken": stale})
        };
        let (status, problem) = report(&app, &silent, &id, what, body).await;
        assert_eq!(status, 409, "{what}: {problem}");
    }
    let token = second[0]["leaseToken"].as_str().unwrap();
    let (status, _) = report(
        &app,
        &other,
        &id,
        "complete",
        json!({"leaseToken": token, "result": "second"}),
    )
    .await;
    assert_eq!(status, 204);
    let done = ws.until_status(&id, "succeeded").await.pop().unwrap();
    assert_eq!(
        (done["attempt"].clone(), done["result"].clone()),
        (json!(2), json!("second"))
    );
    let (_, stored) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        stored["attemptErrors"].as_array().unwrap().len(),
        1,
        "{stored}"
    );
}

async fn cancellation_reaches_a_remote_worker_through_its_heartbeat(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    let worker = app.worker_token("w", &[], &["remote.long"]);
    let id = app.create("acme", json!({"type": "remote.long"})).await;
    let leased = lease(&app, &worker, json!({"waitMs": 5000})).await;
    let token = leased[0]["leaseToken"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post("acme", &format!("/v1/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, beat) = report(
        &app,
        &worker,
        &id,
        "heartbeat",
        json!({"leaseToken": token}),
    )
    .await;
    assert_eq!((status, beat), (200, json!({"cancelled": true})));
    let (status, _) = report(&app, &worker, &id, "complete", json!({"leaseToken": token})).await;
    assert_eq!(status, 409);
    let (_, stored) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(stored["status"], "cancelled");
}

async fn a_failed_attempt_is_retried_unless_not_retryable(backend: Backend) {
    // The built-in worker queues due retries.
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let worker = app.worker_token("w", &[], &["remote.flaky"]);
    let id = app
        .create("acme", json!({"type": "remote.flaky", "maxAttempts": 5}))
        .await;
    let first = lease(&app, &worker, json!({"waitMs": 5000})).await;
    let token = first[0]["leaseToken"].as_str().unwrap();
    let (status, _) = report(
        &app,
        &worker,
        &id,
        "fail",
        json!({"leaseToken": token, "error": "upstream timed out"}),
    )
    .await;
    assert_eq!(status, 204);
    let second = lease(&app, &worker, json!({"waitMs": 15000})).await;
    assert_eq!(second[0]["attempt"], 2, "retried after the backoff");
    let token = second[0]["leaseToken"].as_str().unwrap();
    let (status, _) = report(
        &app,
        &worker,
        &id,
        "fail",
        json!({"leaseToken": token, "error": "bad input", "retryable": false}),
    )
    .await;
    assert_eq!(status, 204);
    let failed = ws.until_status(&id, "failed").await.pop().unwrap();
    assert_eq!(
        (failed["attempt"].clone(), failed["error"].clone()),
        (json!(2), json!("bad input"))
    );
}

async fn a_tenant_scoped_worker_token_cannot_lease_another_tenants_jobs(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    let acme = app.create("acme", json!({"type": "remote.t"})).await;
    let beta = app.create("beta", json!({"type": "remote.t"})).await;
    let scoped = app.worker_token("beta-only", &["beta"], &["remote.t"]);
    let jobs = lease(&app, &scoped, json!({"max": 10, "waitMs": 0})).await;
    let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [beta.as_str()]);
    assert!(
        lease(&app, &scoped, json!({"max": 10, "waitMs": 300}))
            .await
            .is_empty()
    );

    // Another worker takes acme's; the scoped one can report nothing on it.
    let any = app.worker_token("any", &[], &["remote.t"]);
    let jobs = lease(&app, &any, json!({"max": 10, "waitMs": 5000})).await;
    assert_eq!(jobs[0]["id"], acme.as_str());
    let token = jobs[0]["leaseToken"].as_str().unwrap();
    let (status, _) = report(
        &app,
        &scoped,
        &acme,
        "complete",
        json!({"leaseToken": token}),
    )
    .await;
    assert_eq!(status, 409, "out of its scope, whatever the lease token");
}

in_both_modes!(
    a_remote_workers_job_goes_through_its_life_and_the_tenant_sees_it,
    a_remote_worker_that_stops_heartbeating_loses_its_job_and_its_late_complete_gets_409,
    cancellation_reaches_a_remote_worker_through_its_heartbeat,
    a_failed_attempt_is_retried_unless_not_retryable,
    a_tenant_scoped_worker_token_cannot_lease_another_tenants_jobs,
);

#[tokio::test]
async fn a_token_for_type_a_cannot_lease_type_b() {
    let app = spawn_app_with(Options::without_worker()).await;
    let a = app.create("acme", json!({"type": "type-a"})).await;
    let b = app.create("acme", json!({"type": "type-b"})).await;
    let only_a = app.worker_token("a", &[], &["type-a"]);
    let (status, problem) = app
        .post_with(
            &only_a,
            "/v1/worker/lease",
            json!({"types": ["type-b"], "waitMs": 0}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("type-b"),
        "{problem}"
    );
    let jobs = lease(&app, &only_a, json!({"max": 10, "waitMs": 0})).await;
    let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.as_str()], "its token's types by default");
    let (_, waiting) = app.get("acme", &format!("/v1/jobs/{b}")).await;
    assert_eq!(waiting["status"], "queued");

    let any = app.worker_token("any", &[], &[]);
    let (status, problem) = app
        .post_with(&any, "/v1/worker/lease", json!({"waitMs": 0}))
        .await;
    assert_eq!(
        status, 422,
        "a token for any type must say which: {problem}"
    );
}

#[tokio::test]
async fn worker_and_tenant_tokens_each_open_only_their_own_routes() {
    let app = spawn_app_with(Options::without_worker()).await;
    let worker = app.worker_token("w", &[], &["x"]);
    let (status, problem) = app
        .post_with(&app.token("acme"), "/v1/worker/lease", json!({"waitMs": 0}))
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = app
        .post_with(&worker, "/v1/jobs", json!({"type": "x"}))
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, _) = app
        .post_with("not-a-token", "/v1/worker/lease", json!({"waitMs": 0}))
        .await;
    assert_eq!(status, 401);
}

/// The polls wait on the broker, not on a database connection: the API's
/// pool (10 connections) stays free for everyone else while 100 wait.
#[tokio::test]
async fn a_hundred_concurrent_long_polls_hold_no_postgres_connection_while_they_wait() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut polls = tokio::task::JoinSet::new();
    for n in 0..100 {
        let (http, url) = (app.http.clone(), app.url("/v1/worker/lease"));
        let token = app.worker_token(&format!("poller-{n}"), &[], &["idle.type"]);
        polls.spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"waitMs": 4000}))
                .send()
                .await
                .unwrap();
            crate::support::read(response).await
        });
    }
    // Each poll registers its worker as it starts waiting.
    tokio::time::timeout(WAIT, async {
        loop {
            let live = app.broker.live_types().await.unwrap();
            if live.iter().any(|(t, n)| t == "idle.type" && *n == 100) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("100 polls waiting");
    // Held connections would fill the pool (10); the API's own background
    // reads may hold one or two for a moment.
    let mut busiest = 0;
    for _ in 0..50 {
        busiest = busiest.max(app.store.pool_stats().unwrap().busy);
        tokio::task::yield_now().await;
    }
    assert!(
        busiest <= 2,
        "a waiting poll holds no connection: {busiest} busy"
    );
    let started = tokio::time::Instant::now();
    let (status, _) = app.get("acme", "/v1/stats").await;
    assert_eq!(status, 200);
    let id = app.create("acme", json!({"type": "idle.type"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "others are served meanwhile"
    );

    let mut got = Vec::new();
    while let Some(answer) = polls.join_next().await {
        let (status, jobs) = answer.unwrap();
        assert_eq!(status, 200, "{jobs}");
        got.extend(jobs.as_array().unwrap().iter().map(|j| j["id"].clone()));
    }
    assert_eq!(
        got,
        [json!(id)],
        "one poll took the job, the others answered []"
    );
}

//! Bad input gets a clear 4xx problem and writes nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobwire_server::{Claims, JwtKeys};
use serde_json::{Value, json};

use crate::support::{Backend, Options, TestApp, read, spawn_app_with};

/// Sends a raw body to `path` and returns the status and problem body.
async fn send(app: &TestApp, path: &str, content_type: Option<&str>, body: String) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(path))
        .bearer_auth(app.token("acme"))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    read(request.send().await.expect("request")).await
}

async fn every_bad_create_gets_its_status_and_writes_nothing(backend: Backend) {
    // No worker: the queues must hold exactly what the API pushed.
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let big = "x".repeat(1024 * 1024 + 1);
    let json = Some("application/json");
    let many: Vec<Value> = (0..1001).map(|_| json!({"type": "noop"})).collect();
    let cases: Vec<(&str, &str, Option<&str>, String, u16)> = vec![
        (
            "malformed JSON",
            "/v1/jobs",
            json,
            r#"{"type": "noop""#.into(),
            400,
        ),
        ("not JSON at all", "/v1/jobs", json, "type=noop".into(), 400),
        (
            "no content type",
            "/v1/jobs",
            None,
            r#"{"type":"noop"}"#.into(),
            415,
        ),
        (
            "missing type",
            "/v1/jobs",
            json,
            r#"{"payload":{}}"#.into(),
            422,
        ),
        ("empty type", "/v1/jobs", json, r#"{"type":""}"#.into(), 422),
        (
            "type not a string",
            "/v1/jobs",
            json,
            r#"{"type":7}"#.into(),
            422,
        ),
        (
            "unknown priority",
            "/v1/jobs",
            json,
            r#"{"type":"noop","priority":"urgent"}"#.into(),
            422,
        ),
        (
            "unknown field",
            "/v1/jobs",
            json,
            r#"{"type":"noop","colour":"red"}"#.into(),
            422,
        ),
        (
            "payload over the limit",
            "/v1/jobs",
            json,
            json!({"type":"noop","payload":big}).to_string(),
            413,
        ),
        (
            "batch over 1000",
            "/v1/jobs/batch",
            json,
            json!({"jobs": many}).to_string(),
            422,
        ),
        (
            "empty batch",
            "/v1/jobs/batch",
            json,
            r#"{"jobs":[]}"#.into(),
            422,
        ),
        (
            "batch with one bad job",
            "/v1/jobs/batch",
            json,
            r#"{"jobs":[{"type":"noop"},{"type":""}]}"#.into(),
            422,
        ),
        (
            "delayMs past what a date holds (JSON.stringify({delayMs: 1e16}))",
            "/v1/jobs",
            json,
            r#"{"type":"noop","delayMs":10000000000000000}"#.into(),
            422,
        ),
        (
            "delayMs over a hundred years",
            "/v1/jobs",
            json,
            r#"{"type":"noop","delayMs":604800000000000}"#.into(),
            422,
        ),
        (
            "runAt in year 20000",
            "/v1/jobs",
            json,
            r#"{"type":"noop","runAt":"+20000-01-01T00:00:00Z"}"#.into(),
            422,
        ),
        (
            "runAt before year 1",
            "/v1/jobs",
            json,
            r#"{"type":"noop","runAt":"-0001-01-01T00:00:00Z"}"#.into(),
            422,
        ),
        (
            "timeoutMs over a week",
            "/v1/jobs",
            json,
            r#"{"type":"noop","timeoutMs":604800001}"#.into(),
            422,
        ),
        (
            "batch with one job delayed past what a date holds",
            "/v1/jobs/batch",
            json,
            r#"{"jobs":[{"type":"noop"},{"type":"noop","delayMs":10000000000000000}]}"#.into(),
            422,
        ),
        (
            "batch with an unknown field",
            "/v1/jobs/batch",
            json,
            r#"{"jobs":[],"x":1}"#.into(),
            422,
        ),
    ];
    for (what, path, content_type, body, expected) in cases {
        let (status, problem) = send(&app, path, content_type, body).await;
        assert_eq!(status, expected, "{what}: {problem}");
        assert_eq!(
            problem["status"], expected,
            "{what}: problem body {problem}"
        );
        assert!(
            !problem["detail"].as_str().unwrap_or("").is_empty(),
            "{what}: detail"
        );
    }
    assert_eq!(app.job_count().await, 0, "no row was written");
    assert_eq!(app.queued_ids().await, 0, "no ID was queued");

    // And the same API still takes good input.
    let (status, body) = send(
        &app,
        "/v1/jobs/batch",
        json,
        r#"{"jobs":[{"type":"noop"},{"type":"echo","priority":"high"}]}"#.into(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.job_count().await, 2);
    assert_eq!(app.queued_ids().await, 2);
}

async fn problem_bodies_are_problem_json(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let response = app
        .http
        .post(app.url("/v1/jobs"))
        .bearer_auth(app.token("acme"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let (status, _) = app.get("acme", "/v1/jobs/not-a-uuid").await;
    assert_eq!(status, 400);
    let (status, _) = app.get("acme", "/v1/jobs?limit=0").await;
    assert_eq!(status, 422);
    let (status, _) = app.get("acme", "/v1/jobs?status=done").await;
    assert_eq!(status, 422);
}

async fn missing_malformed_expired_or_forged_tokens_get_401(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let expired = app.keys.sign(&Claims {
        tenant: "acme".parse().unwrap(),
        exp: (now - Duration::from_secs(600)).as_secs(),
        iat: None,
        aud: None,
        iss: None,
    });
    let forged = JwtKeys::new(b"someone else's secret, 32 bytes or more")
        .unwrap()
        .issue(&"acme".parse().unwrap(), Duration::from_secs(60))
        .unwrap();
    let headers = [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer not.a.jwt".to_owned()),
        Some(format!("Basic {}", app.token("acme"))),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {forged}")),
    ];
    for header in headers {
        let mut request = app.http.get(app.url("/v1/jobs"));
        if let Some(header) = &header {
            request = request.header("authorization", header);
        }
        let (status, problem) = read(request.send().await.unwrap()).await;
        assert_eq!(status, 401, "{header:?}: {problem}");
        assert_eq!(problem["status"], 401);
    }
    // The WebSocket refuses the same tokens before upgrading.
    for token in [expired, forged] {
        let error =
            tokio_tungstenite::connect_async(format!("ws://{}/v1/ws?token={token}", app.addr))
                .await
                .expect_err("refused");
        match error {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("expected HTTP 401, got {other}"),
        }
    }
    assert_eq!(app.job_count().await, 0);
}

async fn a_malformed_websocket_frame_gets_an_error_frame_not_a_hangup(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let mut ws = app.ws("acme").await;
    for bad in [
        json!("hello"),
        json!({"type": "subscribe"}),
        json!({"type": "dance"}),
    ] {
        ws.send(bad.clone()).await;
        let reply = ws.next_frame().await.expect("still connected");
        assert_eq!(reply["event"], "error", "{bad} -> {reply}");
    }
    // Still usable: a narrowed subscription only gets the named job.
    let wanted = app.create("acme", json!({"type": "noop"})).await;
    ws.send(json!({"type": "subscribe", "jobIds": [wanted]}))
        .await;
    let ack = ws.next_frame().await.expect("ack");
    let ack = if ack["event"] == "subscribed" {
        ack
    } else {
        ws.next_frame().await.expect("ack")
    };
    assert_eq!(ack["jobIds"], json!([wanted]));
    let other = app.create("acme", json!({"type": "noop"})).await;
    let (code, _) = app
        .post("acme", &format!("/v1/jobs/{other}/cancel"), json!({}))
        .await;
    assert_eq!(code, 200);
    let (code, _) = app
        .post("acme", &format!("/v1/jobs/{wanted}/cancel"), json!({}))
        .await;
    assert_eq!(code, 200);
    // The subscribe answers with the job's current state, then its changes:
    // only ever the named job.
    loop {
        let update = ws.next_update().await;
        assert_eq!(
            update["jobId"],
            wanted.as_str(),
            "the other job's updates were filtered out"
        );
        if update["status"] == "cancelled" {
            break;
        }
    }
}

in_both_modes!(
    every_bad_create_gets_its_status_and_writes_nothing,
    problem_bodies_are_problem_json,
    missing_malformed_expired_or_forged_tokens_get_401,
    a_malformed_websocket_frame_gets_an_error_frame_not_a_hangup,
);

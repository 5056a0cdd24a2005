//! The limits a production HTTP service has: sessions per tenant and in all,
//! requests in flight, a deadline per request; and the request ID that ties
//! an error a user sees to the server's log.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Options, TestApp, Ws, spawn_app_with};

/// Opens a WebSocket and returns the close frame the server sends at once,
/// or `None` when it sends `connected` instead.
async fn refused(app: &TestApp, tenant: &str) -> Option<(u16, String)> {
    let url = format!("ws://{}/v1/ws?token={}", app.addr, app.token(tenant));
    let (mut stream, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgraded");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a first frame in time")
        .expect("a first frame")
        .expect("a frame, not an error");
    match first {
        Message::Close(Some(close)) => Some((close.code.into(), close.reason.to_string())),
        Message::Text(text) => {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
            assert_eq!(frame["event"], "connected", "{frame}");
            None
        }
        other => panic!("unexpected first frame {other:?}"),
    }
}

#[tokio::test]
async fn sessions_over_the_tenant_or_server_cap_are_closed_with_1013() {
    let app = spawn_app_with(Options {
        ws_max_sessions: 3,
        ws_max_sessions_per_tenant: 2,
        ..Options::without_worker()
    })
    .await;
    let acme_1 = app.ws("acme").await;
    let _acme_2 = app.ws("acme").await;
    let (code, reason) = refused(&app, "acme").await.expect("acme is at its cap");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("acme"), "{reason}");

    // Another tenant takes the server's last place, then the server is full.
    let _globex = app.ws("globex").await;
    let (code, reason) = refused(&app, "initech")
        .await
        .expect("the server is at its cap");
    assert_eq!(code, 1013, "{reason}");

    // A session that ends gives its place back.
    drop(acme_1);
    let reopened = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if refused(&app, "acme").await.is_none() {
                return;
            }
        }
    })
    .await;
    assert!(
        reopened.is_ok(),
        "acme's place came back once a session closed"
    );
}

/// Starts a request whose body never arrives: it stays in flight.
async fn stalled_request(app: &TestApp) -> TcpStream {
    let mut socket = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
        app.addr,
        app.token("acme")
    );
    socket.write_all(head.as_bytes()).await.expect("send head");
    socket
}

/// Reads one HTTP/1.1 response (status and problem body) off `socket`.
async fn response(socket: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = socket.read(&mut buf).await.expect("read");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw);
            if n == 0 || text.trim_end().ends_with('}') {
                return;
            }
        }
    })
    .await
    .expect("an answer in time");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().expect("status code");
    (status, text)
}

#[tokio::test]
async fn requests_over_the_in_flight_cap_get_503_and_so_do_slow_ones() {
    let app = spawn_app_with(Options {
        max_in_flight: 1,
        request_timeout: Duration::from_millis(500),
        ..Options::without_worker()
    })
    .await;
    let mut stalled = stalled_request(&app).await;
    // While it waits for its body, it holds the one place: the next is refused.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = app
                .http
                .get(app.url("/v1/jobs"))
                .bearer_auth(app.token("acme"))
                .send()
                .await
                .expect("GET");
            if response.status() == 503 {
                return response;
            }
        }
    })
    .await
    .expect("a request over the cap was refused");
    assert_eq!(refused.headers()["retry-after"], "1");
    let problem: Value = refused.json().await.expect("problem body");
    assert!(
        problem["detail"].as_str().unwrap().contains("at once"),
        "{problem}"
    );

    // The stalled request is answered 503 at its deadline, and frees its place.
    let (status, body) = response(&mut stalled).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("took longer than 500 ms"), "{body}");
    let (status, body) = app.get("acme", "/v1/jobs").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_problems_repeat_it() {
    let app = spawn_app_with(Options::without_worker()).await;
    let response = app
        .http
        .get(app.url("/v1/jobs/not-a-uuid"))
        .bearer_auth(app.token("acme"))
        .send()
        .await
        .expect("GET");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(!id.is_empty());
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["requestId"], id.as_str(), "{problem}");

    // A caller's own ID is kept, end to end.
    let response = app
        .http
        .get(app.url("/v1/nowhere"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let problem: Value = response.json().await.expect("problem");
    assert_eq!(problem["requestId"], "trace-me-42", "{problem}");

    let response = app.http.get(app.url("/healthz")).send().await.expect("GET");
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn a_query_the_database_refuses_is_a_500_not_an_outage() {
    let app = spawn_app_with(Options::without_worker()).await;
    let id = app.create("acme", json!({"type": "noop"})).await;
    // A schema the code does not expect: a bug, not an outage.
    let pool = sqlx::PgPool::connect(app.database_url())
        .await
        .expect("connect");
    sqlx::query("alter table jobs rename column payload to payload_moved")
        .execute(&pool)
        .await
        .expect("rename");
    let (status, problem) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 500, "{problem}");
    assert_eq!(problem["detail"], "internal error", "no internals leak");
    assert!(problem["requestId"].is_string(), "{problem}");
}

#[tokio::test]
async fn unsubscribing_is_answered_unsubscribed() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut ws: Ws = app.ws("acme").await;
    ws.send(json!({"type": "unsubscribe"})).await;
    let answer = ws.next_frame().await.expect("an answer");
    assert_eq!(answer, json!({"event": "unsubscribed"}));
}

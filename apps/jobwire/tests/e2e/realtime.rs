//! The realtime path: the subscriber survives a dropped connection, pings keep
//! idle clients and find dead ones.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::support::{Options, PrivateRedis, TestApp, WAIT, job, spawn_app_with};

fn probe(tenant: &str, id: Uuid) -> String {
    json!({"tenantId": tenant, "jobId": id, "type": "probe", "status": "queued", "version": 1,
        "attempt": 0, "error": null, "at": "2026-01-01T00:00:00Z"})
    .to_string()
}

#[tokio::test]
async fn the_subscriber_reconnects_after_its_connection_is_killed() {
    let mut redis = PrivateRedis::start().await;
    let app = spawn_app_with(Options {
        redis_url: Some(redis.url.clone()),
        ..Options::default()
    })
    .await;
    let mut ws = app.ws("acme").await;
    let before = app.create("acme", job("noop", json!({}))).await;
    ws.until_status(&before, "succeeded").await;

    let killed = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    assert_eq!(
        killed,
        redis::Value::Int(1),
        "the API holds exactly one subscriber connection"
    );

    // Probe until one gets through: the subscriber is back.
    let back = async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let id = Uuid::now_v7();
            app.publish_raw(&probe("acme", id)).await;
            let got = tokio::time::timeout(Duration::from_millis(200), ws.next_update()).await;
            if let Ok(update) = got
                && update["jobId"] == id.to_string()
            {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, back)
        .await
        .expect("the subscriber reconnected");
    let after = app.create("acme", job("noop", json!({}))).await;
    ws.until_status(&after, "succeeded").await;

    // With Redis gone, the API says it is not ready, and why.
    redis.stop();
    let not_ready = wait_for_readyz(&app, 503).await;
    assert!(not_ready.contains("Redis"), "{not_ready}");
}

async fn wait_for_readyz(app: &TestApp, status: u16) -> String {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let wait = async {
        loop {
            tick.tick().await;
            let response = app.http.get(app.url("/readyz")).send().await.unwrap();
            if response.status() == status {
                return response.text().await.unwrap();
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("readyz status in time")
}

#[tokio::test]
async fn pings_keep_an_idle_client_alive_and_drop_a_silent_one() {
    let app = spawn_app_with(Options {
        ws_ping_interval: Duration::from_millis(100),
        ..Options::default()
    })
    .await;
    let (code, _) =
        crate::support::read(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(code, 200);

    // A live client answers pings (tungstenite does so while reading) and stays.
    let mut live = app.ws("acme").await;
    let mut pings = 0;
    while pings < 5 {
        match tokio::time::timeout(WAIT, live.stream.next())
            .await
            .expect("a ping")
        {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(_)) => {}
            other => panic!("the idle client was dropped: {other:?}"),
        }
    }
    let id = app.create("acme", job("noop", json!({}))).await;
    live.until_status(&id, "succeeded").await;

    // A client that completes the handshake and then never answers is dropped.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /v1/ws?token={} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.token("acme"),
        app.addr
    );
    silent.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closed the silent connection");
    assert!(
        received.starts_with(b"HTTP/1.1 101"),
        "it was upgraded first"
    );
}

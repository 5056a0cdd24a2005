//! What a resuming client costs the API: replay streams from the store a
//! page at a time, without payloads, and big results stay in the store
//! (`resultOmitted`), so many clients resuming at once over big jobs keep
//! the API process small.

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::processes::start_api;
use crate::support::{Options, WAIT, spawn_app_with};

/// The bound this test holds the API's peak RSS to. Before replay streamed,
/// each of these clients made the API hold every replayed row, payload and
/// result included: about 1 GiB per client here.
const MAX_API_RSS_KIB: u64 = 64 * 1024;

/// Peak resident memory of a process, from `/proc`.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn fifty_clients_resuming_over_2000_jobs_with_256_kib_results_keep_the_api_small() {
    let app = spawn_app_with(Options::without_worker()).await;
    // 2,000 finished jobs with 256 KiB payloads and results, written straight
    // into the store (running them through a debug build would take minutes),
    // before the API starts: written after, they would be changes it never saw
    // published, and its gap filler would send them to every client at once.
    let pool = sqlx::PgPool::connect(app.database_url())
        .await
        .expect("connect");
    sqlx::query(
        "insert into jobs (id, tenant_id, job_type, payload, priority, status, attempt, result, \
         version, started_at, finished_at) \
         select gen_random_uuid(), 'acme', 'echo', blob, 'default', 'succeeded', 1, blob, 3, \
         now(), now() \
         from generate_series(1, 2000), \
         (select jsonb_build_object('blob', repeat('x', 256 * 1024)) as blob) as big",
    )
    .execute(&pool)
    .await
    .expect("insert 2,000 big jobs");
    let (api, addr) = start_api(&app).await;
    let before = peak_rss_kib(api.id().expect("running"));

    let token = app.token("acme");
    let clients = (0..50).map(|_| {
        let url = format!("ws://{addr}/v1/ws?token={token}&cursor=0");
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            let mut updates = 0;
            loop {
                let message = tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("a frame in time")
                    .expect("open")
                    .expect("a frame");
                let Message::Text(text) = message else {
                    assert!(!matches!(message, Message::Close(_)), "closed: {message:?}");
                    continue;
                };
                let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                match frame["event"].as_str() {
                    Some("resumed") => return (updates, frame["replayed"].as_u64()),
                    Some("connected") => {}
                    Some(other) => panic!("unexpected {other}: {frame}"),
                    None => {
                        assert!(frame.get("payload").is_none(), "no payload in updates");
                        if frame["status"] == "succeeded" {
                            assert_eq!(frame["resultOmitted"], true, "{frame:.200}");
                            assert!(frame.get("result").is_none());
                        }
                        updates += 1;
                    }
                }
            }
        }
    });
    let resumed = futures_util::future::join_all(clients).await;
    for (updates, replayed) in resumed {
        assert_eq!(replayed, Some(2000));
        assert_eq!(updates, 2000);
    }
    let peak = peak_rss_kib(api.id().expect("running"));
    println!(
        "jobwire-api peak RSS: {} MiB before the clients resumed, {} MiB after (bound {} MiB)",
        before / 1024,
        peak / 1024,
        MAX_API_RSS_KIB / 1024
    );
    assert!(
        peak < MAX_API_RSS_KIB,
        "the API peaked at {} MiB",
        peak / 1024
    );
}

/// Clients resuming while updates keep flowing are not kicked as slow
/// consumers: the live updates queued during their replay are written
/// between its pages, so their queues do not fill while they catch up.
#[tokio::test]
async fn clients_resuming_during_a_sustained_stream_are_not_kicked() {
    let app = spawn_app_with(crate::support::Options {
        worker_concurrency: 16,
        ..Options::default()
    })
    .await;
    let batch = |n: usize| {
        let jobs: Vec<Value> = (0..n)
            .map(|_| serde_json::json!({"type": "noop"}))
            .collect();
        serde_json::json!({ "jobs": jobs })
    };
    for _ in 0..3 {
        let (status, body) = app.post("acme", "/v1/jobs/batch", batch(1000)).await;
        assert_eq!(status, 201, "{body}");
    }
    // The stream: batches of 50 jobs, each job three updates, as fast as they go.
    let producing = {
        let (http, url, token) = (
            app.http.clone(),
            app.url("/v1/jobs/batch"),
            app.token("acme"),
        );
        let body = batch(50);
        tokio::spawn(async move {
            for _ in 0..40 {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("create");
                assert_eq!(response.status(), 201);
            }
        })
    };
    let token = app.token("acme");
    let clients = (0..10).map(|_| {
        let url = format!("ws://{}/v1/ws?token={token}&cursor=0", app.addr);
        async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            let mut resumed = false;
            // Through the replay and the stream, to the one `echo` job, created last.
            loop {
                let message = tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("a frame in time")
                    .expect("open")
                    .expect("a frame");
                match message {
                    Message::Close(close) => panic!("closed (resumed: {resumed}): {close:?}"),
                    Message::Text(text) => {
                        let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                        if frame["event"] == "resumed" {
                            resumed = true;
                        } else if frame["type"] == "echo" && frame["status"] == "succeeded" {
                            assert!(resumed, "the replay ended before the stream did");
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    });
    let clients = tokio::spawn(futures_util::future::join_all(clients));
    producing.await.expect("producer");
    app.create("acme", serde_json::json!({"type": "echo"}))
        .await;
    clients.await.expect("clients");
}

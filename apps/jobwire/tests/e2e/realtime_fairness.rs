//! Fairness in the realtime path: one tenant's update storm (thousands of
//! updates of 4 KiB, clients that read and clients that never read) does not
//! hold back another tenant's frames. The quiet tenant's client receives every
//! one of its updates, in order, and the last of them before the storm is
//! over; the stormy tenant's stalled clients are dropped as slow consumers.
//! Latencies are printed, not asserted: timing belongs to the benchmark
//! (`jobwire-bench fairness --realtime`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::support::{Backend, Options, WAIT, Ws, spawn_app_with};

/// The stormy tenant's updates.
const STORM: usize = 5000;
/// One quiet update after every this many stormy ones, while they last.
const EVERY: usize = 40;
/// Stormy updates published after the quiet tenant's last one.
const TAIL: usize = 1000;
const QUIET: usize = (STORM - TAIL) / EVERY;
const STALLED: usize = 8;
const READERS: usize = 4;

fn update(tenant: &str, seq: usize, padding: &str) -> String {
    json!({
        "tenantId": tenant, "jobId": Uuid::now_v7(), "type": "storm", "status": "running",
        "version": 1, "attempt": 1, "error": null, "progress": {"seq": seq, "pad": padding},
        "at": "2026-01-01T00:00:00Z",
    })
    .to_string()
}

/// Reads a client until it has seen `until` updates or its connection ends,
/// noting its count in `progress`; returns how many updates it saw.
async fn read_all(mut ws: Ws, until: usize, progress: &AtomicUsize) -> usize {
    let mut seen = 0;
    while seen < until {
        match ws.stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame.get("event").is_none() {
                    seen += 1;
                    progress.fetch_max(seen, Ordering::Relaxed);
                }
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    seen
}

async fn one_tenants_update_storm_does_not_hold_back_anothers_frames(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        worker: false,
        ws_queue: 256,
        ..Options::default()
    })
    .await;
    let stalled: Vec<Ws> =
        futures_util::future::join_all((0..STALLED).map(|_| app.ws("storm"))).await;
    let readers: Vec<Ws> =
        futures_util::future::join_all((0..READERS).map(|_| app.ws("storm"))).await;
    let mut quiet = app.ws("quiet").await;

    // How far the storm got, as its readers see it and as it was published.
    let storm_read = Arc::new(AtomicUsize::new(0));
    let storm_over = Arc::new(AtomicBool::new(false));
    let reading: Vec<_> = readers
        .into_iter()
        .map(|ws| {
            let storm_read = Arc::clone(&storm_read);
            tokio::spawn(async move { read_all(ws, STORM, &storm_read).await })
        })
        .collect();

    // When each quiet update was published, for the latencies printed.
    let published: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let publisher = {
        let (broker, published, storm_over) = (
            app.broker.clone(),
            Arc::clone(&published),
            Arc::clone(&storm_over),
        );
        let padding = "x".repeat(4096);
        tokio::spawn(async move {
            let mut quiet_sent = 0;
            for n in 0..STORM {
                broker.publish(&update("storm", n, &padding)).await.unwrap();
                if n % EVERY == EVERY - 1 && quiet_sent < QUIET {
                    broker
                        .publish(&update("quiet", quiet_sent, ""))
                        .await
                        .unwrap();
                    published.lock().await.push(Instant::now());
                    quiet_sent += 1;
                }
                // Lets the subscriber and the sessions run between publishes
                // (the in-process broker's publish never waits).
                tokio::task::yield_now().await;
            }
            storm_over.store(true, Ordering::Release);
        })
    };

    let mut latencies = Vec::new();
    let mut storm_published_at_last = false;
    let mut storm_read_at_last = 0;
    for expected in 0..QUIET {
        let frame = quiet.next_update().await;
        let received = Instant::now();
        assert_eq!(
            frame["tenantId"], "quiet",
            "only its own tenant's updates: {frame}"
        );
        assert_eq!(
            frame["progress"]["seq"], expected,
            "the quiet tenant's updates arrive, every one, in order"
        );
        if let Some(sent) = published.lock().await.get(expected) {
            latencies.push(received.duration_since(*sent));
        }
        storm_published_at_last = storm_over.load(Ordering::Acquire);
        storm_read_at_last = storm_read.load(Ordering::Relaxed);
    }
    assert!(
        !storm_published_at_last,
        "the quiet tenant's last update arrived while the storm was still being published"
    );

    publisher.await.unwrap();
    let mut read = Vec::new();
    for reader in reading {
        read.push(reader.await.unwrap());
    }
    // The stalled clients, reading at last, find their streams cut off as
    // slow consumers: closed with 4008, or just dropped when they did not
    // read within the server's timeout for that close frame.
    let mut cut_off = 0;
    for mut ws in stalled {
        let closed = tokio::time::timeout(WAIT, async {
            let mut received = 0;
            while let Some(message) = ws.stream.next().await {
                match message {
                    Ok(Message::Text(_)) => received += 1,
                    Ok(Message::Close(frame)) => return (received, frame.map(|f| f.code)),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            (received, None)
        })
        .await
        .expect("a stalled client's stream ends");
        assert!(
            closed.0 < STORM,
            "a stalled client was cut off ({} of {STORM})",
            closed.0
        );
        assert!(
            matches!(closed.1, None | Some(CloseCode::Library(4008))),
            "closed as a slow consumer: {:?}",
            closed.1
        );
        cut_off += usize::from(closed.1.is_some());
    }

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{backend:?}: {QUIET} quiet updates amid {STORM} stormy ones ({STALLED} stalled clients cut off, {cut_off} with 4008; \
         readers got {read:?}): publish -> frame p50 {:?}, p99 {:?}, max {:?}; the storm's readers had {} when the last quiet update arrived",
        at(0.5),
        at(0.99),
        at(1.0),
        storm_read_at_last,
    );
}

in_both_modes!(one_tenants_update_storm_does_not_hold_back_anothers_frames);

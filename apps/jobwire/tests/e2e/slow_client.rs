//! A client that cannot keep up is dropped without slowing anyone else.

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::support::{Backend, Options, WAIT, spawn_app_with};

const UPDATES: usize = 400;

async fn a_client_that_never_reads_is_disconnected_while_others_keep_receiving(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        worker: false,
        ws_queue: 16,
        ..Options::default()
    })
    .await;
    let mut stalled = app.ws("acme").await;
    let mut reader = app.ws("acme").await;

    // 400 updates of 64 KiB (25 MiB): far more than socket buffers and the
    // 16-slot queue hold. Lockstep with the reader, so only the stalled
    // client can fall behind.
    let padding = "x".repeat(64 * 1024);
    for n in 0..UPDATES {
        let update = json!({
            "tenantId": "acme", "jobId": Uuid::now_v7(), "type": "bulk", "status": "running",
            "version": n, "attempt": 1, "error": null, "progress": {"pad": padding}, "at": "2026-01-01T00:00:00Z",
        });
        app.publish_raw(&update.to_string()).await;
        let received = reader.next_update().await;
        assert_eq!(
            received["version"], n,
            "the reading client gets every update in order"
        );
    }

    // The stalled client, reading at last, finds its stream cut short.
    let mut received = 0;
    let mut close_code = None;
    let drained = tokio::time::timeout(WAIT, async {
        while let Some(message) = stalled.stream.next().await {
            match message {
                Ok(Message::Text(_)) => received += 1,
                Ok(Message::Close(frame)) => {
                    close_code = frame.map(|f| f.code);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    drained.await.expect("the stalled client's stream ends");
    assert!(
        received < UPDATES,
        "it was cut off ({received} of {UPDATES} arrived)"
    );
    assert_eq!(
        close_code,
        Some(CloseCode::from(4008)),
        "the close code says `slow consumer`"
    );
}

in_both_modes!(a_client_that_never_reads_is_disconnected_while_others_keep_receiving,);

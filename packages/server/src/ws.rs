//! `GET /v1/ws`: every update of the client's tenant, as JSON text frames.
//!
//! A session is two tasks: the send task drains the client's hub queue (and
//! replies) into the socket and pings; the receive task reads client frames.
//! When one ends the other is aborted. Server-originated control frames carry
//! an `event` field (`connected`, `subscribed`, `error`); updates never do.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use jobwire_core::{JobId, TenantId};
use jobwire_hub::{FilterHandle, Subscription};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::{ApiError, AppState};

/// Close code for a client dropped because its queue filled up.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code on server shutdown ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Most job IDs one `subscribe` may name.
const MAX_SUBSCRIBE_IDS: usize = 10_000;
/// Largest frame a client may send: a full `subscribe` fits with room to spare.
const MAX_CLIENT_MESSAGE: usize = 512 * 1024;
/// How long a slow consumer's close frame may wait behind what it has not
/// read yet; a client that reads again within it learns why it was dropped.
const SLOW_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame may take on shutdown.
const SHUTDOWN_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
pub(crate) struct WsQuery {
    token: Option<String>,
}

/// Authenticates (header or `?token=`, for browsers), then upgrades.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = query.token.as_deref().or(bearer).ok_or_else(|| {
        ApiError::Unauthorized(
            "pass a token as `?token=<JWT>` or `Authorization: Bearer <JWT>`".into(),
        )
    })?;
    let tenant = state.keys().verify(token.trim())?;
    let ws = ws
        .map_err(|e| ApiError::BadRequest(e.body_text()))?
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    let sessions = state.sessions().clone();
    Ok(ws.on_upgrade(move |socket| sessions.track_future(session(state, tenant, socket))))
}

/// Why the send side of a session stopped.
enum End {
    Kicked,
    Shutdown,
    Silent,
    Gone,
}

async fn session(state: AppState, tenant: TenantId, socket: WebSocket) {
    let subscription = state
        .hub()
        .register(tenant.clone(), state.ws().queue_capacity);
    let filter = subscription.filter_handle();
    let (sink, stream) = socket.split();
    let (replies_tx, replies_rx) = mpsc::channel(16);
    let started = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));

    let mut send = tokio::spawn(send_loop(
        state.clone(),
        subscription,
        sink,
        replies_rx,
        started,
        Arc::clone(&last_heard),
    ));
    let mut receive = tokio::spawn(receive_loop(
        stream, filter, replies_tx, started, last_heard,
    ));
    tokio::select! {
        _ = &mut send => receive.abort(),
        _ = &mut receive => send.abort(),
    }
    tracing::debug!(%tenant, "WebSocket session ended");
}

async fn send_loop(
    state: AppState,
    mut subscription: Subscription<Utf8Bytes>,
    mut sink: SplitSink<WebSocket, Message>,
    mut replies: mpsc::Receiver<Utf8Bytes>,
    started: Instant,
    last_heard: Arc<AtomicU64>,
) {
    let kicked = subscription.kicked();
    let shutdown = state.shutdown().clone();
    let interval = state.ws().ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);

    // The client is registered with the hub by now: from this frame on, it misses nothing.
    let hello =
        json!({"event": "connected", "tenantId": subscription.tenant().as_str()}).to_string();
    if sink.send(Message::Text(hello.into())).await.is_err() {
        return;
    }

    let end = loop {
        let message = tokio::select! {
            biased;
            _ = kicked.cancelled() => break End::Kicked,
            _ = shutdown.cancelled() => break End::Shutdown,
            _ = ping.tick() => {
                let silent_ms = (started.elapsed().as_millis() as u64)
                    .saturating_sub(last_heard.load(Ordering::Relaxed));
                if Duration::from_millis(silent_ms) > interval * 2 {
                    break End::Silent;
                }
                Message::Ping(Default::default())
            }
            Some(reply) = replies.recv() => Message::Text(reply),
            update = subscription.recv() => match update {
                Some(text) => Message::Text(text),
                None => break End::Gone,
            },
        };
        // Racing the write too: a client that stopped reading blocks it.
        let sent = tokio::select! {
            biased;
            _ = kicked.cancelled() => break End::Kicked,
            _ = shutdown.cancelled() => break End::Shutdown,
            sent = sink.send(message) => sent,
        };
        if sent.is_err() {
            break End::Gone;
        }
    };

    let close = match end {
        End::Kicked => Some((
            CLOSE_SLOW_CONSUMER,
            "slow consumer: too many updates queued",
            SLOW_CLOSE_TIMEOUT,
        )),
        End::Shutdown => Some((
            CLOSE_GOING_AWAY,
            "server shutting down",
            SHUTDOWN_CLOSE_TIMEOUT,
        )),
        End::Silent | End::Gone => None,
    };
    if let Some((code, reason, timeout)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // A client that never reads cannot take even this frame; then the socket is just dropped.
        let _ = tokio::time::timeout(timeout, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum ClientFrame {
    /// Narrow this connection to these jobs.
    Subscribe {
        #[serde(rename = "jobIds")]
        job_ids: Vec<JobId>,
    },
    /// Back to every job of the tenant.
    Unsubscribe,
}

async fn receive_loop(
    mut stream: SplitStream<WebSocket>,
    filter: FilterHandle,
    replies: mpsc::Sender<Utf8Bytes>,
    started: Instant,
    last_heard: Arc<AtomicU64>,
) {
    while let Some(Ok(message)) = stream.next().await {
        last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let reply = match message {
            Message::Text(text) => handle_frame(text.as_str(), &filter),
            Message::Binary(_) => error_frame("binary frames are not supported; send JSON text"),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if replies.send(reply).await.is_err() {
            break;
        }
    }
}

fn handle_frame(text: &str, filter: &FilterHandle) -> Utf8Bytes {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Subscribe { job_ids }) if job_ids.len() > MAX_SUBSCRIBE_IDS => error_frame(
            &format!("subscribe names at most {MAX_SUBSCRIBE_IDS} jobIds"),
        ),
        Ok(ClientFrame::Subscribe { job_ids }) => {
            let reply = json!({"event": "subscribed", "jobIds": job_ids}).to_string();
            filter.set(Some(job_ids.into_iter().collect::<HashSet<_>>()));
            reply.into()
        }
        Ok(ClientFrame::Unsubscribe) => {
            filter.set(None);
            json!({"event": "subscribed", "jobIds": null})
                .to_string()
                .into()
        }
        Err(e) => error_frame(&format!(
            "bad frame ({e}); send {{\"type\":\"subscribe\",\"jobIds\":[...]}} or {{\"type\":\"unsubscribe\"}}"
        )),
    }
}

fn error_frame(detail: &str) -> Utf8Bytes {
    json!({"event": "error", "detail": detail})
        .to_string()
        .into()
}

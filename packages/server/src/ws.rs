//! `GET /v1/ws`: every update of the client's tenant, as JSON text frames.
//!
//! A session is two tasks: the send task drains the client's hub queue (and
//! replies) into the socket and pings; the receive task reads client frames.
//! When one ends the other is aborted. Server-originated control frames carry
//! an `event` field (`connected`, `subscribed`, `resumed`, `reset`, `error`);
//! updates never do.
//!
//! Every update carries its job's `version` and a `cursor`. The session never
//! sends a client an update older than one it already sent for that job. A
//! client reconnecting with `?cursor=` first gets the current state of every
//! job of its tenant that changed since (from the store), then the live
//! stream, with no gap: it is registered for live updates before the store is
//! read. Past the resume window it gets `reset` and a snapshot instead.

use std::collections::{HashMap, HashSet};
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
use jobwire_store::ListFilter;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::{ApiError, AppState, Frame};

/// Close code for a client dropped because its queue filled up.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code on server shutdown ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Most job IDs one `subscribe` may name.
const MAX_SUBSCRIBE_IDS: usize = 10_000;
/// Largest frame a client may send: a full `subscribe` fits with room to spare.
const MAX_CLIENT_MESSAGE: usize = 512 * 1024;
/// Bytes read from a client at a time. tungstenite allocates 128 KiB per
/// socket up front by default; clients send little, and an idle connection
/// should cost a few KiB, not 140.
const READ_BUFFER: usize = 4 * 1024;
/// Frames are gathered up to this many bytes before a write (a flush writes
/// at once); the buffer only grows for a client that is behind.
const WRITE_BUFFER: usize = 16 * 1024;
/// How long a slow consumer's close frame may wait behind what it has not
/// read yet; a client that reads again within it learns why it was dropped.
const SLOW_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame may take on shutdown.
const SHUTDOWN_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
pub(crate) struct WsQuery {
    token: Option<String>,
    cursor: Option<String>,
}

/// Most changes replayed on resume; further behind, the client gets a snapshot.
const RESUME_WINDOW: usize = 10_000;
/// Places before the cursor replayed too: writes commit in a slightly
/// different order than they take their places, so a change just before the
/// cursor may have been published after it. The client drops what it has.
const RESUME_OVERLAP: i64 = 1_000;
/// Changes read from the store per query while replaying.
const REPLAY_PAGE: u32 = 500;
/// Jobs in a snapshot: the tenant's most recent.
const SNAPSHOT_JOBS: u32 = 500;

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
        .and_then(crate::auth::bearer_token);
    let token = query.token.as_deref().or(bearer).ok_or_else(|| {
        ApiError::Unauthorized(
            "pass a token as `?token=<JWT>` or `Authorization: Bearer <JWT>`".into(),
        )
    })?;
    let tenant = state.keys().verify(token.trim())?;
    let resume = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "`{cursor}` is not a cursor (take it from an update)"
            ))
        })?),
    };
    let ws = ws
        .map_err(|e| ApiError::BadRequest(e.body_text()))?
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let sessions = state.sessions().clone();
    Ok(ws.on_upgrade(move |socket| sessions.track_future(session(state, tenant, resume, socket))))
}

/// Why the send side of a session stopped.
enum End {
    Kicked,
    Shutdown,
    Silent,
    Gone,
}

/// What the receive task asks the send task to send.
enum Reply {
    Control(Utf8Bytes),
    Update(Frame),
}

async fn session(state: AppState, tenant: TenantId, resume: Option<i64>, socket: WebSocket) {
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
        resume,
        sink,
        replies_rx,
        started,
        Arc::clone(&last_heard),
    ));
    let mut receive = tokio::spawn(receive_loop(
        state.clone(),
        tenant.clone(),
        stream,
        filter,
        replies_tx,
        started,
        last_heard,
    ));
    tokio::select! {
        _ = &mut send => receive.abort(),
        _ = &mut receive => send.abort(),
    }
    tracing::debug!(%tenant, "WebSocket session ended");
}

/// The newest version of each job sent to one client.
#[derive(Default)]
struct Sent(HashMap<JobId, i64>);

impl Sent {
    /// Whether `frame` is newer than what the client has; remembers it if so.
    fn is_news(&mut self, frame: &Frame) -> bool {
        match self.0.get(&frame.job) {
            Some(version) if *version >= frame.version => false,
            _ => {
                self.0.insert(frame.job, frame.version);
                true
            }
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one session's parts, passed once"
)]
async fn send_loop(
    state: AppState,
    mut subscription: Subscription<Frame>,
    resume: Option<i64>,
    mut sink: SplitSink<WebSocket, Message>,
    mut replies: mpsc::Receiver<Reply>,
    started: Instant,
    last_heard: Arc<AtomicU64>,
) {
    let mut sent = Sent::default();
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
    if let Some(cursor) = resume {
        let tenant = subscription.tenant().clone();
        if catch_up(&state, &tenant, cursor, &mut sink, &mut sent)
            .await
            .is_err()
        {
            return;
        }
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
            Some(reply) = replies.recv() => match reply {
                Reply::Control(text) => Message::Text(text),
                Reply::Update(frame) if sent.is_news(&frame) => Message::Text(frame.text),
                Reply::Update(_) => continue,
            },
            update = subscription.recv() => match update {
                Some(frame) if sent.is_news(&frame) => Message::Text(frame.text),
                Some(_) => continue,
                None => break End::Gone,
            },
        };
        // Racing the write too: a client that stopped reading blocks it.
        let written = tokio::select! {
            biased;
            _ = kicked.cancelled() => break End::Kicked,
            _ = shutdown.cancelled() => break End::Shutdown,
            written = write_queued(&mut sink, message, &mut subscription, &mut sent) => written,
        };
        if written.is_err() {
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

/// Most frames written before one flush.
const MAX_FRAMES_PER_FLUSH: usize = 64;

/// Writes `first`, and the updates already queued behind it, in one flush:
/// a client that is behind gets several frames per write instead of one.
async fn write_queued(
    sink: &mut SplitSink<WebSocket, Message>,
    first: Message,
    subscription: &mut Subscription<Frame>,
    sent: &mut Sent,
) -> Result<(), axum::Error> {
    sink.feed(first).await?;
    for _ in 1..MAX_FRAMES_PER_FLUSH {
        match subscription.try_recv() {
            Some(frame) if sent.is_news(&frame) => sink.feed(Message::Text(frame.text)).await?,
            Some(_) => {}
            None => break,
        }
    }
    sink.flush().await
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

#[allow(
    clippy::too_many_arguments,
    reason = "one session's parts, passed once"
)]
async fn receive_loop(
    state: AppState,
    tenant: TenantId,
    mut stream: SplitStream<WebSocket>,
    filter: FilterHandle,
    replies: mpsc::Sender<Reply>,
    started: Instant,
    last_heard: Arc<AtomicU64>,
) {
    while let Some(Ok(message)) = stream.next().await {
        last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let out = match message {
            Message::Text(text) => handle_frame(&state, &tenant, text.as_str(), &filter).await,
            Message::Binary(_) => vec![error_frame(
                "binary frames are not supported; send JSON text",
            )],
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        for reply in out {
            if replies.send(reply).await.is_err() {
                return;
            }
        }
    }
}

/// Answers one client frame. A subscribe is answered with the current state
/// of each named job, so an update that came before it is not lost.
async fn handle_frame(
    state: &AppState,
    tenant: &TenantId,
    text: &str,
    filter: &FilterHandle,
) -> Vec<Reply> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Subscribe { job_ids }) if job_ids.len() > MAX_SUBSCRIBE_IDS => {
            vec![error_frame(&format!(
                "subscribe names at most {MAX_SUBSCRIBE_IDS} jobIds"
            ))]
        }
        Ok(ClientFrame::Subscribe { job_ids }) => {
            let ack = json!({"event": "subscribed", "jobIds": job_ids}).to_string();
            filter.set(Some(job_ids.iter().copied().collect::<HashSet<_>>()));
            let mut out = vec![Reply::Control(ack.into())];
            match state.store().get_many(tenant, &job_ids).await {
                Ok(jobs) => out.extend(jobs.iter().map(|job| Reply::Update(Frame::from(job)))),
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot read subscribed jobs");
                    out.push(error_frame(
                        "cannot read the jobs' current state now; subscribe again",
                    ));
                }
            }
            out
        }
        Ok(ClientFrame::Unsubscribe) => {
            filter.set(None);
            vec![Reply::Control(
                json!({"event": "subscribed", "jobIds": null})
                    .to_string()
                    .into(),
            )]
        }
        Err(e) => vec![error_frame(&format!(
            "bad frame ({e}); send {{\"type\":\"subscribe\",\"jobIds\":[...]}} or {{\"type\":\"unsubscribe\"}}"
        ))],
    }
}

/// Sends what changed since `cursor` (or, past the resume window, a reset and
/// a snapshot), then `resumed` or `snapshot`. Errs when the socket is gone.
async fn catch_up(
    state: &AppState,
    tenant: &TenantId,
    cursor: i64,
    sink: &mut SplitSink<WebSocket, Message>,
    sent: &mut Sent,
) -> Result<(), axum::Error> {
    let mut replay = Vec::new();
    let mut from = cursor.saturating_sub(RESUME_OVERLAP).max(0);
    let mut complete = false;
    while replay.len() <= RESUME_WINDOW {
        match state.store().changes_since(tenant, from, REPLAY_PAGE).await {
            Ok(jobs) => {
                complete = jobs.len() < REPLAY_PAGE as usize;
                from = jobs.last().map_or(from, |job| job.change_seq);
                replay.extend(jobs);
                if complete {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot read changes to resume a client");
                break;
            }
        }
    }
    let done = if complete {
        json!({"event": "resumed", "replayed": replay.len()})
    } else {
        let filter = ListFilter {
            status: None,
            job_type: None,
            before: None,
            limit: SNAPSHOT_JOBS,
        };
        replay = match state.store().list(tenant, &filter).await {
            Ok(page) => page.jobs.into_iter().rev().collect(),
            Err(e) => {
                tracing::warn!(error = ?e, "cannot read a snapshot for a client");
                Vec::new()
            }
        };
        let reset = json!({
            "event": "reset",
            "detail": "the cursor is past the resume window (or the store did not answer); \
                       a snapshot of the most recent jobs follows",
        });
        sink.send(Message::Text(reset.to_string().into())).await?;
        json!({"event": "snapshot", "jobs": replay.len()})
    };
    for job in &replay {
        let frame = Frame::from(job);
        if sent.is_news(&frame) {
            sink.send(Message::Text(frame.text)).await?;
        }
    }
    sink.send(Message::Text(done.to_string().into())).await
}

fn error_frame(detail: &str) -> Reply {
    Reply::Control(
        json!({"event": "error", "detail": detail})
            .to_string()
            .into(),
    )
}

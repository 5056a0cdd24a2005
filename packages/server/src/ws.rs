//! `GET /v1/ws`: every update of the client's tenant, as JSON text frames.
//!
//! A session is two tasks: the send task drains the client's hub queue (and
//! replies) into the socket and pings; the receive task reads client frames.
//! When one ends the other is aborted. Server-originated control frames carry
//! an `event` field (`connected`, `subscribed`, `unsubscribed`, `resumed`,
//! `reset`, `snapshot`, `error`); updates never do.
//!
//! Every update carries its job's `version` and a `cursor`. The session never
//! sends a client an update older than one it already sent for that job. A
//! client reconnecting with `?cursor=` first gets the current state of every
//! job of its tenant that changed since (from the store), then the live
//! stream, with no gap: it is registered for live updates before the store is
//! read. Past the resume window, or from before a change of a job that
//! retention has deleted since, it gets `reset` and a snapshot instead.

use std::collections::{HashMap, HashSet, VecDeque};
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

use crate::{ApiError, AppState, Frame};

/// Close code for a client dropped because its queue filled up.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code on server shutdown ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code when the instance or the tenant has its most sessions open
/// ("try again later").
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
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
/// Changes read from the store per query while replaying: at most about
/// 6 MiB with results of up to 64 KiB.
const REPLAY_PAGE: u32 = 100;
/// Jobs in a snapshot: the tenant's most recently changed.
const SNAPSHOT_JOBS: u32 = 500;
/// How long a replay may take to write before the session gives up on the
/// client (one that stopped reading holds its place until then, no longer).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Every change of the tenant's jobs, over a WebSocket. Authenticates
/// (header or `?token=`, for browsers), then upgrades.
#[utoipa::path(
    get,
    path = "/v1/ws",
    operation_id = "websocket",
    tag = "realtime",
    description = "Upgrades to a WebSocket that carries every change of the tenant's jobs as JSON \
                   text frames (see the README, \"Real-time updates\", for the frames and the \
                   messages a client may send). A refused upgrade is a problem+json answer; once \
                   upgraded, a session over JOBWIRE_WS_MAX_SESSIONS (or the tenant's share) is \
                   closed with code 1013.",
    security(("bearer" = []), ("token" = [])),
    params(
        ("cursor" = Option<i64>, Query, minimum = 0,
         description = "The `cursor` of the last update received: the changes since are replayed first"),
        ("Connection" = String, Header, pattern = "^[Uu][Pp][Gg][Rr][Aa][Dd][Ee]$", description = "`Upgrade`"),
        ("Upgrade" = String, Header, pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, description = "The client's random key (RFC 6455)"),
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or a `cursor` that is not one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "A browser page on an origin neither this server's nor in JOBWIRE_CORS_ORIGINS", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    crate::origins::check_upgrade(&headers, &state.limits().allowed_origins)?;
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
    // Refused after the upgrade, with a close code, since a browser's
    // WebSocket never shows the HTTP status of a refused upgrade.
    Ok(match state.session_limit().acquire(&tenant) {
        Ok(slot) => ws.on_upgrade(move |socket| {
            sessions.track_future(async move {
                session(state, tenant, resume, socket).await;
                drop(slot);
            })
        }),
        Err(reason) => ws.on_upgrade(move |mut socket| async move {
            let close = CloseFrame {
                code: CLOSE_TRY_AGAIN_LATER,
                reason: reason.into(),
            };
            let _ = tokio::time::timeout(
                SHUTDOWN_CLOSE_TIMEOUT,
                socket.send(Message::Close(Some(close))),
            )
            .await;
        }),
    })
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
        .register(tenant.clone(), state.ws().queue_limit());
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

/// Jobs whose newest version sent is remembered per session: an older
/// update of a job further back than this (a late duplicate or replay) is
/// let through, and the client drops it by `version` as it must anyway.
const MAX_SENT: usize = 4096;

/// The newest version of each job recently sent to one client, bounded so
/// that a long session does not grow with every job its tenant ever ran.
#[derive(Default)]
struct Sent {
    versions: HashMap<JobId, i64>,
    /// Jobs in the order first sent, oldest first, for forgetting.
    order: VecDeque<JobId>,
}

impl Sent {
    /// Whether `frame` is newer than what the client has; remembers it if so.
    fn is_news(&mut self, frame: &Frame) -> bool {
        match self.versions.get_mut(&frame.job) {
            Some(version) if *version >= frame.version => false,
            Some(version) => {
                *version = frame.version;
                true
            }
            None => {
                self.versions.insert(frame.job, frame.version);
                self.order.push_back(frame.job);
                if self.order.len() > MAX_SENT
                    && let Some(oldest) = self.order.pop_front()
                {
                    self.versions.remove(&oldest);
                }
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

    // The client is registered with the hub by now: from this frame on, it
    // misses nothing. The newest place of the change feed, read after that,
    // is a cursor the client can resume from even if it receives no update
    // before this connection drops (the resume's overlap covers changes
    // committed around it); without it such a client could not catch up.
    let mut hello = json!({"event": "connected", "tenantId": subscription.tenant().as_str()});
    match state.store().latest_change().await {
        Ok(latest) => hello["cursor"] = json!(latest.unwrap_or(0).to_string()),
        Err(e) => tracing::warn!(error = %e, "cannot read the newest change for a connected frame"),
    }
    let hello = hello.to_string();
    state.frames_sent().increment(1);
    if sink.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    if let Some(cursor) = resume {
        let catch_up = CatchUp {
            state: &state,
            tenant: subscription.tenant().clone(),
            sink: &mut sink,
            subscription: &mut subscription,
            sent: &mut sent,
            held: VecDeque::new(),
            held_bytes: 0,
        };
        // Kicked or shut down meanwhile: the loop below says so and closes.
        let caught_up = tokio::select! {
            caught_up = tokio::time::timeout(CATCH_UP_TIMEOUT, catch_up.run(cursor)) => caught_up,
            _ = kicked.cancelled() => Ok(Ok(())),
            _ = shutdown.cancelled() => Ok(Ok(())),
        };
        match caught_up {
            Ok(Ok(())) => {}
            // The loop below closes with 4008, as for any client that falls behind.
            Ok(Err(Stopped::Behind)) => kicked.cancel(),
            Ok(Err(Stopped::Gone)) | Err(_) => return,
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
        if matches!(message, Message::Text(_)) {
            state.frames_sent().increment(1);
        }
        // Racing the write too: a client that stopped reading blocks it.
        let written = tokio::select! {
            biased;
            _ = kicked.cancelled() => break End::Kicked,
            _ = shutdown.cancelled() => break End::Shutdown,
            written = write_queued(&mut sink, message, &mut subscription, &mut sent, state.frames_sent()) => written,
        };
        if written.is_err() {
            break End::Gone;
        }
    };

    if matches!(end, End::Kicked) {
        metrics::counter!(jobwire_metrics::WS_SLOW_CONSUMER_KICKS).increment(1);
    }
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
    frames: &metrics::Counter,
) -> Result<(), axum::Error> {
    sink.feed(first).await?;
    for _ in 1..MAX_FRAMES_PER_FLUSH {
        match subscription.try_recv() {
            Some(frame) if sent.is_news(&frame) => {
                frames.increment(1);
                sink.feed(Message::Text(frame.text)).await?
            }
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
        let answered = match message {
            Message::Text(text) => {
                handle_frame(&state, &tenant, text.as_str(), &filter, &replies).await
            }
            Message::Binary(_) => replies
                .send(error_frame(
                    "binary frames are not supported; send JSON text",
                ))
                .await
                .map_err(|_| Gone),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if answered.is_err() {
            return;
        }
    }
}

/// The send task is gone: the session is ending.
struct Gone;

/// Answers one client frame. A subscribe is answered with the current state
/// of each named job, so an update that came before it is not lost.
async fn handle_frame(
    state: &AppState,
    tenant: &TenantId,
    text: &str,
    filter: &FilterHandle,
    replies: &mpsc::Sender<Reply>,
) -> Result<(), Gone> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Subscribe { job_ids }) if job_ids.len() > MAX_SUBSCRIBE_IDS => {
            let error = error_frame(&format!(
                "subscribe names at most {MAX_SUBSCRIBE_IDS} jobIds"
            ));
            replies.send(error).await.map_err(|_| Gone)
        }
        Ok(ClientFrame::Subscribe { job_ids }) => {
            let ack = json!({"event": "subscribed", "jobIds": job_ids}).to_string();
            filter.set(Some(job_ids.iter().copied().collect::<HashSet<_>>()));
            if replies.send(Reply::Control(ack.into())).await.is_err() {
                return Err(Gone);
            }
            // A page at a time, each sent before the next is read: the
            // replies channel is small, so a slow client holds little.
            for page in job_ids.chunks(REPLAY_PAGE as usize) {
                match state.store().changes_of(tenant, page).await {
                    Ok(changes) => {
                        for change in &changes {
                            let frame = Reply::Update(Frame::from(&change.update));
                            if replies.send(frame).await.is_err() {
                                return Err(Gone);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "cannot read subscribed jobs");
                        let error =
                            error_frame("cannot read the jobs' current state now; subscribe again");
                        return replies.send(error).await.map_err(|_| Gone);
                    }
                }
            }
            Ok(())
        }
        Ok(ClientFrame::Unsubscribe) => {
            filter.set(None);
            let ack = json!({"event": "unsubscribed"}).to_string();
            replies
                .send(Reply::Control(ack.into()))
                .await
                .map_err(|_| Gone)
        }
        Err(e) => {
            let error = error_frame(&format!(
                "bad frame ({e}); send {{\"type\":\"subscribe\",\"jobIds\":[...]}} or {{\"type\":\"unsubscribe\"}}"
            ));
            replies.send(error).await.map_err(|_| Gone)
        }
    }
}

/// A resuming client's catch-up: what changed since its cursor, written
/// from the store a page at a time (so this session's memory does not grow
/// with how far behind the client is; updates carry no payloads), while the
/// live updates that arrive meanwhile are held back and written after it.
/// Holding them keeps every cursor the client sees during the replay one it
/// can resume from, and keeps its hub queue from filling while it catches
/// up; holding more than a queue's worth of bytes or a resume window of
/// updates counts as falling behind.
struct CatchUp<'a> {
    state: &'a AppState,
    tenant: TenantId,
    sink: &'a mut SplitSink<WebSocket, Message>,
    subscription: &'a mut Subscription<Frame>,
    sent: &'a mut Sent,
    held: VecDeque<Frame>,
    held_bytes: usize,
}

/// Why a catch-up stopped.
enum Stopped {
    /// The socket is gone.
    Gone,
    /// Too many live updates came in meanwhile: the client is too slow.
    Behind,
}

impl From<axum::Error> for Stopped {
    fn from(_: axum::Error) -> Self {
        Self::Gone
    }
}

impl<'a> CatchUp<'a> {
    /// Sends what changed since `cursor` (or, past the resume window or
    /// what retention left, a reset and a snapshot), then `resumed` or
    /// `snapshot`, then the live updates held meanwhile.
    async fn run(mut self, cursor: i64) -> Result<(), Stopped> {
        let from = cursor.saturating_sub(RESUME_OVERLAP).max(0);
        let window = RESUME_WINDOW as u32;
        let (state, tenant) = (self.state, self.tenant.clone());
        let behind = self
            .holding(state.store().count_changes_since(&tenant, from, window + 1))
            .await?;
        let until = self.holding(state.store().latest_change()).await?;
        let swept = self.holding(state.store().swept_through(&tenant)).await?;
        match (behind, until, swept) {
            // A job of the tenant that changed after `from` was deleted by
            // retention since: its last change can no longer be replayed.
            (Ok(_), Ok(_), Ok(Some(swept))) if swept > from => self.snapshot().await?,
            (Ok(behind), Ok(until), Ok(_)) if behind <= window => {
                // Changes after `until` come live: the client was registered before it was read.
                match self.replay(from, until.unwrap_or(from)).await? {
                    Some(replayed) => {
                        metrics::counter!(jobwire_metrics::WS_RESUMES).increment(1);
                        let done = json!({"event": "resumed", "replayed": replayed});
                        self.state.frames_sent().increment(1);
                        self.sink
                            .send(Message::Text(done.to_string().into()))
                            .await?;
                    }
                    None => self.snapshot().await?,
                }
            }
            (Ok(_), Ok(_), Ok(_)) => self.snapshot().await?,
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::warn!(error = ?e, "cannot read changes to resume a client");
                self.snapshot().await?;
            }
        }
        self.take_live()?;
        for frame in std::mem::take(&mut self.held) {
            if self.sent.is_news(&frame) {
                self.state.frames_sent().increment(1);
                self.sink.feed(Message::Text(frame.text)).await?;
            }
        }
        self.sink.flush().await?;
        Ok(())
    }

    /// Writes the tenant's changes after `after` up to `until`, a page at a
    /// time; returns how many, or `None` when the store did not answer.
    async fn replay(&mut self, mut after: i64, until: i64) -> Result<Option<usize>, Stopped> {
        let (state, tenant) = (self.state, self.tenant.clone());
        let mut replayed = 0;
        while after < until {
            let read = state.store().changes_since(&tenant, after, REPLAY_PAGE);
            let page = match self.holding(read).await? {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot read changes to send a client");
                    return Ok(None);
                }
            };
            for change in &page {
                let frame = Frame::from(&change.update);
                if self.sent.is_news(&frame) {
                    self.state.frames_sent().increment(1);
                    self.sink.feed(Message::Text(frame.text)).await?;
                }
            }
            self.sink.flush().await?;
            self.take_live()?;
            replayed += page.len();
            match page.last() {
                Some(last) if page.len() == REPLAY_PAGE as usize => after = last.place,
                _ => break,
            }
        }
        Ok(Some(replayed))
    }

    /// A `reset`, the tenant's most recently changed jobs in the order they
    /// changed, then `snapshot`: for a client too far behind to replay (or
    /// when the store could not say how far).
    async fn snapshot(&mut self) -> Result<(), Stopped> {
        metrics::counter!(jobwire_metrics::WS_RESETS).increment(1);
        self.state.frames_sent().increment(1);
        let reset = json!({
            "event": "reset",
            "detail": "the cursor is past the resume window, or older than what retention \
                       kept (or the store did not answer); a snapshot of the most recently \
                       changed jobs follows",
        });
        self.sink
            .send(Message::Text(reset.to_string().into()))
            .await?;
        let (state, tenant) = (self.state, self.tenant.clone());
        let before = self
            .holding(state.store().nth_latest_change(&tenant, SNAPSHOT_JOBS))
            .await?;
        let until = self.holding(state.store().latest_change()).await?;
        let jobs = match (before, until) {
            (Ok(before), Ok(Some(until))) => {
                self.replay(before.unwrap_or(0), until).await?.unwrap_or(0)
            }
            (Ok(_), Ok(None)) => 0,
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = ?e, "cannot read a snapshot for a client");
                0
            }
        };
        let done = json!({"event": "snapshot", "jobs": jobs});
        self.state.frames_sent().increment(1);
        self.sink
            .send(Message::Text(done.to_string().into()))
            .await?;
        Ok(())
    }

    /// Awaits `read` (a store query), holding the live updates that come meanwhile.
    async fn holding<T>(&mut self, read: impl Future<Output = T>) -> Result<T, Stopped> {
        let mut read = std::pin::pin!(read);
        loop {
            tokio::select! {
                biased;
                done = &mut read => return Ok(done),
                Some(frame) = self.subscription.recv() => self.hold(frame)?,
            }
        }
    }

    /// Holds the live updates queued now.
    fn take_live(&mut self) -> Result<(), Stopped> {
        while let Some(frame) = self.subscription.try_recv() {
            self.hold(frame)?;
        }
        Ok(())
    }

    fn hold(&mut self, frame: Frame) -> Result<(), Stopped> {
        self.held_bytes += frame.text.len();
        self.held.push_back(frame);
        if self.held.len() > RESUME_WINDOW || self.held_bytes > self.state.ws().queue_bytes {
            return Err(Stopped::Behind);
        }
        Ok(())
    }
}

fn error_frame(detail: &str) -> Reply {
    Reply::Control(
        json!({"event": "error", "detail": detail})
            .to_string()
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(job: JobId, version: i64) -> Frame {
        Frame {
            job,
            version,
            text: "{}".into(),
        }
    }

    #[test]
    fn sent_drops_older_versions_and_stays_bounded() {
        let mut sent = Sent::default();
        let first = JobId::new();
        assert!(sent.is_news(&frame(first, 2)));
        assert!(!sent.is_news(&frame(first, 1)), "older");
        assert!(!sent.is_news(&frame(first, 2)), "repeated");
        assert!(sent.is_news(&frame(first, 3)));
        for _ in 0..2 * MAX_SENT {
            assert!(sent.is_news(&frame(JobId::new(), 1)));
        }
        assert_eq!(sent.versions.len(), MAX_SENT);
        assert_eq!(sent.order.len(), MAX_SENT);
        assert!(
            sent.is_news(&frame(first, 1)),
            "the oldest job was forgotten; the client drops this by version"
        );
    }
}

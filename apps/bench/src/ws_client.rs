//! WebSocket clients of the API, as a consumer writes them: connect with the
//! tenant's token, wait for `{"event":"connected"}` (from then on nothing is
//! missed), then read update frames.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the handshake and the `connected` frame may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects as `token`'s tenant and waits for the `connected` frame.
///
/// The client's buffers are small (4 KiB instead of tungstenite's 128 KiB) so
/// that thousands of clients fit in the bench's memory; frames are small.
pub async fn connect(addr: &str, token: &str) -> anyhow::Result<Socket> {
    let url = format!("ws://{addr}/v1/ws?token={token}");
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let connecting = async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                .await
                .with_context(|| format!("WebSocket connect to ws://{addr}/v1/ws"))?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Frame = serde_json::from_str(text.as_str())
                        .with_context(|| format!("first frame is not JSON: {text}"))?;
                    if frame.event.as_deref() == Some("connected") {
                        return Ok(socket);
                    }
                    bail!("expected the `connected` frame first, got {text}");
                }
                Some(Ok(Message::Close(close))) => bail!("closed before `connected`: {close:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading the `connected` frame"),
                None => bail!("the connection ended before `connected`"),
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .with_context(|| format!("no `connected` frame within {CONNECT_TIMEOUT:?}"))?
}

/// The fields of a frame the bench looks at.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "jobId")]
    job_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

/// Why a connection stopped delivering frames.
pub fn describe_end(
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> String {
    match message {
        Some(Ok(Message::Close(Some(close)))) => {
            format!(
                "closed by the server: code {} {:?}",
                u16::from(close.code),
                close.reason.as_str()
            )
        }
        Some(Ok(Message::Close(None))) => "closed by the server without a code".to_owned(),
        Some(Err(e)) => format!("connection error: {e}"),
        _ => "the connection ended".to_owned(),
    }
}

/// A job that succeeded, and when its frame arrived.
pub type Succeeded = (String, Instant);

/// Reads one client's frames in a task of its own and passes on each update
/// of one status (`succeeded` unless told); stops (and says why) when the
/// connection ends. Dropping it stops the task.
pub struct StatusWatch {
    pub rx: mpsc::UnboundedReceiver<Succeeded>,
    task: JoinHandle<String>,
    /// Why the connection ended, once known.
    ended: Option<String>,
}

impl StatusWatch {
    pub fn start(socket: Socket) -> StatusWatch {
        Self::watching(socket, "succeeded")
    }

    /// Reports the updates of `status` instead (`running`: when jobs start).
    pub fn watching(mut socket: Socket, status: &'static str) -> StatusWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let message = socket.next().await;
                let text = match &message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        return describe_end(message);
                    }
                    Some(Ok(_)) => continue,
                };
                let at = Instant::now();
                let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                    return format!("a frame that is not JSON: {text}");
                };
                if frame.status.as_deref() == Some(status)
                    && let Some(id) = frame.job_id
                    && tx.send((id.into_owned(), at)).is_err()
                {
                    return "nobody is listening any more".to_owned();
                }
            }
        });
        StatusWatch {
            rx,
            task,
            ended: None,
        }
    }

    /// The next `succeeded` update; an error saying why once the connection has ended.
    pub async fn next(&mut self) -> anyhow::Result<Succeeded> {
        match self.rx.recv().await {
            Some(succeeded) => Ok(succeeded),
            None => {
                if self.ended.is_none() {
                    let why = (&mut self.task)
                        .await
                        .unwrap_or_else(|e| format!("the reader task failed: {e}"));
                    self.ended = Some(why);
                }
                bail!(
                    "the bench's WebSocket client stopped: {}",
                    self.ended.as_deref().unwrap_or_default()
                )
            }
        }
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens `n` clients, client `i` with `tokens[i % tokens.len()]`, at most
/// `at_once` handshakes at a time; each has had its `connected` frame.
pub async fn connect_many(
    addr: &str,
    tokens: &[String],
    n: usize,
    at_once: usize,
) -> anyhow::Result<Vec<Socket>> {
    use futures_util::TryStreamExt;
    anyhow::ensure!(!tokens.is_empty(), "no token to connect with");
    futures_util::stream::iter(0..n)
        .map(|i| connect(addr, &tokens[i % tokens.len()]))
        .buffer_unordered(at_once.max(1))
        .try_collect()
        .await
}

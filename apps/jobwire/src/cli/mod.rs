//! The subcommands for people at a terminal: a token, and a client of a
//! running jobwire (submit, watch, tail, jobs) over its REST API and WebSocket.

pub mod follow;
pub mod jobs;
pub mod submit;
pub mod tail;
pub mod token;
pub mod watch;

use std::process::ExitCode;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Where the jobwire API is and who asks it.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The jobwire API to talk to (http:// only: put TLS in a proxy in front of it).
    #[arg(long, env = "JOBWIRE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A tenant's token: from `jobwire token`, or the dev token the embedded mode prints.
    #[arg(long, env = "JOBWIRE_TOKEN", hide_env_values = true)]
    token: String,
}

/// A client of one jobwire API, as one tenant.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = args.url.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.starts_with("http://"),
            "--url (JOBWIRE_URL) must start with http:// (this client speaks plain HTTP; \
             reach a TLS endpoint through a local proxy): {base}"
        );
        Ok(Self {
            http: reqwest::Client::new(),
            base,
            token: args.token.clone(),
        })
    }

    /// `GET path` (with its query), the answer's JSON.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base)).query(query);
        self.send(request).await
    }

    /// `POST path` with a JSON body, the answer's JSON.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(request).await
    }

    /// The answer's JSON, or the problem's `detail` as the error.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach jobwire at {}", self.base))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("the answer of {} broke off", self.base))?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let detail = json
                .as_ref()
                .and_then(|problem| problem["detail"].as_str())
                .map_or_else(
                    || String::from_utf8_lossy(&body).into_owned(),
                    str::to_owned,
                );
            anyhow::bail!("{status}: {detail}");
        }
        json.with_context(|| format!("{} answered {status} with no JSON", self.base))
    }

    /// A WebSocket session of the tenant, past its `connected` frame (from
    /// then on no update is missed).
    pub async fn connect(&self) -> anyhow::Result<Session> {
        // `base` starts with http:// (checked in `new`).
        let url = format!(
            "ws{}/v1/ws?token={}",
            &self.base["http".len()..],
            self.token
        );
        let (stream, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response) => anyhow::anyhow!(
                    "the WebSocket was refused: {}: {}",
                    response.status(),
                    response
                        .body()
                        .as_deref()
                        .and_then(|body| serde_json::from_slice::<Value>(body).ok())
                        .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
                e => anyhow::Error::new(e)
                    .context(format!("cannot open the WebSocket of {}", self.base)),
            })?;
        let mut session = Session {
            stream,
            connected: String::new(),
        };
        loop {
            let (frame, text) = session.next().await?;
            if frame["event"] == "connected" {
                session.connected = text;
                return Ok(session);
            }
        }
    }
}

/// An open WebSocket session.
pub struct Session {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `connected` frame, as sent.
    pub connected: String,
}

impl Session {
    /// The next frame, parsed and as sent; an error if the session ends.
    pub async fn next(&mut self) -> anyhow::Result<(Value, String)> {
        loop {
            let message = self
                .stream
                .next()
                .await
                .context("the server closed the WebSocket")?
                .context("the WebSocket broke")?;
            match message {
                Message::Text(text) => {
                    let frame = serde_json::from_str(&text).with_context(|| {
                        format!("the server sent a frame that is not JSON: {text}")
                    })?;
                    return Ok((frame, text.to_string()));
                }
                Message::Close(close) => anyhow::bail!(
                    "the server closed the WebSocket{}",
                    close.map_or(String::new(), |close| format!(
                        " ({} {})",
                        u16::from(close.code),
                        close.reason
                    ))
                ),
                // Pings are answered by tungstenite itself.
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, frame: &Value) -> anyhow::Result<()> {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .context("cannot send on the WebSocket")
    }
}

/// The exit code of a finished job: 0 succeeded, 3 failed, 4 cancelled (1 is
/// an error of the command itself, 2 a bad command line), `None` while it runs.
pub fn exit_code(status: &str) -> Option<ExitCode> {
    match status {
        "succeeded" => Some(ExitCode::SUCCESS),
        "failed" => Some(ExitCode::from(3)),
        "cancelled" => Some(ExitCode::from(4)),
        _ => None,
    }
}

/// A JSON string field, or `-`.
pub fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or("-")
}

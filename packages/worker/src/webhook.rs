//! Webhook handlers: a job type bound to an HTTP endpoint, which runs the job
//! and answers with its outcome.
//!
//! The job is delivered as `POST <url>` with the JSON body
//! `{"id", "tenantId", "type", "attempt", "payload"}`, the headers
//! `jobwire-job-id` and `jobwire-attempt`, the endpoint's own headers, and
//! `jobwire-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`
//! (Stripe's scheme: the receiver recomputes it, compares in constant time,
//! and refuses old timestamps, so that a captured request cannot be replayed
//! later). The answer decides the attempt: 2xx with a JSON body (or none)
//! succeeds with it; 408, 429, 5xx, no answer in time or no connection are
//! retried; any other status fails the job at once.
//!
//! Plain HTTP only: this build carries no TLS stack (see the README).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{Handler, HandlerResult, JobContext, JobError};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "jobwire-signature";
/// How long an endpoint may take to answer when its settings do not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest 2xx body taken as a job's result: the API's default largest payload.
const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// How much of an error answer's body is kept in the job's error.
const ERROR_BODY_CHARS: usize = 200;

/// Why webhook settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidWebhook(String);

/// A [`Handler`] that delivers each job to an HTTP endpoint (see the module
/// docs for the request and how its answer is read). Cheap to clone.
#[derive(Clone)]
pub struct Webhook {
    endpoint: Arc<Endpoint>,
}

#[derive(Clone)]
struct Endpoint {
    url: reqwest::Url,
    timeout: Duration,
    secret: Vec<u8>,
    headers: HeaderMap,
    client: reqwest::Client,
}

/// The URL and timeout only: the secret and the headers (API keys) stay out of logs.
impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.endpoint.url.as_str())
            .field("timeout", &self.endpoint.timeout)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Delivers to `url` (`http://` only), signing with `secret` (not empty),
    /// with a timeout of [`DEFAULT_TIMEOUT`].
    pub fn new(url: &str, secret: impl Into<Vec<u8>>) -> Result<Self, InvalidWebhook> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| InvalidWebhook(format!("`{url}` is not a URL: {e}")))?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(InvalidWebhook(format!(
                    "`{url}`: this build speaks plain HTTP only; use an http:// URL (a local \
                     TLS proxy can carry it further)"
                )));
            }
            other => {
                return Err(InvalidWebhook(format!(
                    "`{url}`: the scheme is `{other}`, not http"
                )));
            }
        }
        let secret = secret.into();
        if secret.is_empty() {
            return Err(InvalidWebhook(
                "the secret is empty: the receiver could not tell jobwire's requests from anyone's"
                    .into(),
            ));
        }
        // A redirect is not followed: a POST would turn into a GET, and the
        // signed request would go where the settings never said.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| InvalidWebhook(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self {
            endpoint: Arc::new(Endpoint {
                url: parsed,
                timeout: DEFAULT_TIMEOUT,
                secret,
                headers: HeaderMap::new(),
                client,
            }),
        })
    }

    /// How long the endpoint may take to answer (connecting and reading the
    /// whole answer included); more than zero.
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, InvalidWebhook> {
        if timeout.is_zero() {
            return Err(InvalidWebhook("the timeout must be more than zero".into()));
        }
        Arc::make_mut(&mut self.endpoint).timeout = timeout;
        Ok(self)
    }

    /// A header sent with every request, such as an API key; not one jobwire
    /// sets itself (`content-type`, `user-agent`, `jobwire-*`).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, InvalidWebhook> {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| InvalidWebhook(format!("`{name}` is not a header name")))?;
        if header == CONTENT_TYPE || header == USER_AGENT || header.as_str().starts_with("jobwire-")
        {
            return Err(InvalidWebhook(format!(
                "header `{header}` is set by jobwire and cannot be configured"
            )));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            InvalidWebhook(format!(
                "the value of header `{header}` holds characters a header cannot carry"
            ))
        })?;
        Arc::make_mut(&mut self.endpoint)
            .headers
            .append(header, value);
        Ok(self)
    }
}

impl Handler for Webhook {
    fn call(
        &self,
        ctx: JobContext,
        payload: Value,
    ) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> {
        let endpoint = Arc::clone(&self.endpoint);
        Box::pin(async move { endpoint.deliver(ctx, payload).await })
    }
}

impl Endpoint {
    async fn deliver(&self, ctx: JobContext, payload: Value) -> HandlerResult {
        let body = json!({
            "id": ctx.job_id(),
            "tenantId": ctx.tenant(),
            "type": ctx.job_type(),
            "attempt": ctx.attempt(),
            "payload": payload,
        })
        .to_string()
        .into_bytes();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("jobwire/", env!("CARGO_PKG_VERSION")))
            .header("jobwire-job-id", ctx.job_id().to_string())
            .header("jobwire-attempt", ctx.attempt().to_string())
            .header(SIGNATURE_HEADER, signature(&self.secret, timestamp, &body))
            .body(body);
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            let limit = if status.is_success() {
                MAX_RESULT_BYTES
            } else {
                // Enough for the characters kept, however many bytes each takes.
                ERROR_BODY_CHARS * 4
            };
            let mut body = Vec::new();
            while body.len() <= limit {
                match response.chunk().await? {
                    Some(chunk) => body.extend_from_slice(&chunk),
                    None => break,
                }
            }
            Ok::<_, reqwest::Error>(answer(status, &body, body.len() > limit))
        };
        // Dropping the request aborts it (the connection is closed).
        tokio::select! {
            answered = tokio::time::timeout(self.timeout, exchange) => match answered {
                Ok(Ok(outcome)) => outcome,
                // The URL stays out of the job's error, which the tenant reads.
                Ok(Err(e)) => Err(JobError::retryable(format!(
                    "cannot reach the endpoint: {}",
                    causes(&e.without_url())
                ))),
                Err(_elapsed) => Err(JobError::retryable(format!(
                    "the endpoint did not answer within {:?}",
                    self.timeout
                ))),
            },
            _ = ctx.cancelled() => Err(JobError::retryable("stopped: the request was aborted")),
        }
    }
}

/// What an answer with `status` and `body` (cut short if `truncated`) makes of the attempt.
fn answer(status: StatusCode, body: &[u8], truncated: bool) -> HandlerResult {
    if status.is_success() {
        if truncated {
            return Err(JobError::fatal(format!(
                "the endpoint answered {status} with a body over {MAX_RESULT_BYTES} bytes, the \
                 most a result may take"
            )));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(body).map_err(|e| {
            JobError::fatal(format!(
                "the endpoint answered {status} with a body that is not JSON ({e}): {}",
                start_of(body)
            ))
        });
    }
    let said = match start_of(body) {
        start if start.is_empty() => format!("the endpoint answered {status}"),
        start => format!("the endpoint answered {status}: {start}"),
    };
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Err(JobError::retryable(said))
    } else if status.is_redirection() {
        Err(JobError::fatal(format!(
            "{said} (redirects are not followed: configure the URL it points to)"
        )))
    } else {
        Err(JobError::fatal(said))
    }
}

/// The first characters of a body, on one line.
fn start_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut start: String = text
        .chars()
        .take(ERROR_BODY_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(ERROR_BODY_CHARS).is_some() {
        start.push('…');
    }
    start
}

/// An error and its causes, `: `-separated (reqwest's own message names none).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `jobwire-signature` header of `body` sent at `timestamp` (Unix
/// seconds): `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails right there")]

    use super::*;

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // Python: hmac.new(b"whsec-test", b'1700000000.{"id":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"whsec-test", 1_700_000_000, br#"{"id":1}"#),
            "t=1700000000,v1=5c7c76af77af443a710729c69dbfac6394ac5b78aa21a360d1cd2a71077fc9cf"
        );
    }

    #[test]
    fn the_answer_decides_the_attempt() {
        assert_eq!(
            answer(StatusCode::OK, br#"{"sent":true}"#, false),
            Ok(json!({"sent": true}))
        );
        assert_eq!(answer(StatusCode::NO_CONTENT, b"", false), Ok(Value::Null));
        for (status, retryable) in [
            (StatusCode::OK, false),
            (StatusCode::BAD_REQUEST, false),
            (StatusCode::UNAUTHORIZED, false),
            (StatusCode::FOUND, false),
            (StatusCode::REQUEST_TIMEOUT, true),
            (StatusCode::TOO_MANY_REQUESTS, true),
            (StatusCode::INTERNAL_SERVER_ERROR, true),
            (StatusCode::SERVICE_UNAVAILABLE, true),
        ] {
            let error = answer(status, b"<html>nope</html>", false).unwrap_err();
            assert_eq!(error.is_retryable(), retryable, "{status}: {error}");
            assert!(error.message().contains(status.as_str()), "{error}");
            assert!(error.message().contains("<html>nope</html>"), "{error}");
        }
        let too_big = answer(StatusCode::OK, b"{}", true).unwrap_err();
        assert!(!too_big.is_retryable() && too_big.message().contains("bytes"));
    }

    #[test]
    fn bad_settings_are_refused_saying_why() {
        let refused = |result: Result<Webhook, InvalidWebhook>| result.unwrap_err().to_string();
        assert!(refused(Webhook::new("not a url", "s")).contains("is not a URL"));
        assert!(refused(Webhook::new("https://a.example/x", "s")).contains("plain HTTP"));
        assert!(refused(Webhook::new("ftp://a.example/x", "s")).contains("`ftp`"));
        assert!(refused(Webhook::new("http://a.example/x", "")).contains("secret is empty"));
        let hook = || Webhook::new("http://a.example/x", "s").unwrap();
        assert!(refused(hook().timeout(Duration::ZERO)).contains("more than zero"));
        assert!(refused(hook().header("jobwire-signature", "x")).contains("set by jobwire"));
        assert!(refused(hook().header("content-type", "x")).contains("set by jobwire"));
        assert!(refused(hook().header("bad name", "x")).contains("not a header name"));
        assert!(refused(hook().header("x-key", "a\nb")).contains("cannot carry"));
        assert!(hook().header("x-api-key", "k").is_ok());
    }
}

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jobwire_core::JobId;
use jobwire_store::StoreError;
use serde::Serialize;

/// Every way a request can fail, each mapped to one HTTP status with an
/// `application/problem+json` body (RFC 9457) whose `detail` says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("job {0} not found")]
    JobNotFound(JobId),
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// Over a quota of the tenant's: try again after `retry_after`.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after: std::time::Duration,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Store(#[source] StoreError),
    /// A fault (a handler panicked, a write failed for a reason other than
    /// an outage); what it was goes to the log, not to the client.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { id } => Self::JobNotFound(id),
            StoreError::InvalidTransition { .. } | StoreError::IdempotencyConflict { .. } => {
                Self::Conflict(e.to_string())
            }
            StoreError::TimeOutOfRange { .. } => Self::Unprocessable(e.to_string()),
            e if e.is_unavailable() => {
                // Logged here since the client's 503 drops it: an outage is worth a line.
                tracing::warn!(error = ?e, "the database is unavailable");
                Self::Unavailable("the database is unavailable; try again".into())
            }
            other => Self::Store(other),
        }
    }
}

impl From<jobwire_broker::BrokerError> for ApiError {
    fn from(e: jobwire_broker::BrokerError) -> Self {
        // Logged here since the client's 503 drops it: an outage is worth a line.
        tracing::warn!(error = ?e, "the broker is unavailable");
        Self::Unavailable("the queue (Redis) is unavailable; try again".into())
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::JobNotFound(_) | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error, as RFC 9457 `application/problem+json`: `detail` says what
/// went wrong and what to change.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "`maxAttempts` must be from 1 to 100",
    "requestId": "5f0c1c0e-8a36-4d8e-9a43-0c3b1b8e6f1d"
}))]
pub(crate) struct Problem<'a> {
    /// Always `about:blank`: the status says what kind of error it is.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: &'a str,
    /// The status's reason phrase.
    #[schema(value_type = String)]
    title: &'a str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong, for a person to read.
    detail: String,
    /// The request's `x-request-id`, which every server log line about the
    /// request carries; absent only when the request had none (never, since
    /// the server gives each request one).
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    request_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Whole seconds, rounded up: `Retry-After: 0` would invite a retry at once.
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            _ => None,
        };
        if status.is_server_error() {
            // The whole chain, once, here; the client gets no internals.
            tracing::error!(error = ?self, "request failed");
        }
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            request_id: crate::guard::current_request_id(),
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

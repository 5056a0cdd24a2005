//! Which browser origins may use the API: pages served by this server, and
//! the apps on other origins listed in `JOBWIRE_CORS_ORIGINS`. The same list
//! answers CORS requests and guards the WebSocket upgrade (a browser sends
//! `Origin` on both; a server-side client sends none and is let through,
//! its token being its credential).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::ApiError;

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `allowed` origins; `None` when there are none (then
/// the API answers no cross-origin request, as without the layer).
pub(crate) fn cors(allowed: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = allowed
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// Refuses a WebSocket upgrade from a page on an origin that is neither this
/// server's own nor listed: a page elsewhere could otherwise open a socket
/// with a token it got hold of.
pub(crate) fn check_upgrade(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let same = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
        });
    if same || allowed.iter().any(|allowed| allowed == origin) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "WebSockets from origin `{origin}` are not allowed; list it in JOBWIRE_CORS_ORIGINS"
    )))
}

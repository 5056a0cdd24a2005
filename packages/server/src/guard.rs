//! What stands between the network and the routes: a request ID, a tracing
//! span, a cap on requests in flight, a deadline, and a catch for panics.
//!
//! Every request gets an `x-request-id` (the client's, or a new UUID), sent
//! back as a header, carried by every log line about the request (its
//! `request` span), and put in any problem body as `requestId`, so that a
//! user's error report finds the server's log.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    /// The ID of the request being answered, for [`ApiError`]'s body.
    static CURRENT_REQUEST: String;
}

/// Says in the request's span (and so in every log line about the request
/// from here on) which job the request is about.
pub(crate) fn record_job(job: &jobwire_core::Job) {
    let span = tracing::Span::current();
    // Its tenant is the request's, recorded with the token.
    span.record("job_id", tracing::field::display(job.id));
    span.record("attempt", job.attempt);
}

/// The request ID of the request this task is answering, if any.
pub(crate) fn current_request_id() -> Option<String> {
    CURRENT_REQUEST.try_with(Clone::clone).ok()
}

/// Limits on requests in flight.
#[derive(Clone, Debug)]
struct Admission {
    slots: Arc<Semaphore>,
    max: usize,
    timeout: Duration,
}

/// Wraps `router` in the layers above. `max_in_flight` requests are served
/// at once (more get 503 at once, with `Retry-After`), and each must be
/// answered within `timeout` (else 503). A WebSocket counts until it is
/// upgraded, not while it stays open.
pub(crate) fn guard(router: Router, max_in_flight: usize, timeout: Duration) -> Router {
    let admission = Admission {
        slots: Arc::new(Semaphore::new(max_in_flight)),
        max: max_in_flight,
        timeout,
    };
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(admission, admit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|id| id.to_str().ok())
                        .unwrap_or_default();
                    // `tenant` is recorded once the token is read, and the
                    // job's fields once a route knows which job it is about.
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %id,
                        tenant = tracing::field::Empty,
                        job_id = tracing::field::Empty,
                        attempt = tracing::field::Empty,
                    )
                })
                // One line per answer, in the request's span (so with its
                // ID): `jobwire::access=warn` in RUST_LOG leaves them out.
                .on_response(
                    |response: &Response, latency: Duration, _: &tracing::Span| {
                        tracing::info!(
                            target: "jobwire::access",
                            status = response.status().as_u16(),
                            latency_ms = latency.as_micros() as f64 / 1000.0,
                            "answered"
                        );
                    },
                )
                // Server errors are logged once, with their chain, by ApiError.
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    CURRENT_REQUEST
        .scope(id, async move {
            let Ok(_slot) = admission.slots.try_acquire() else {
                let mut response = ApiError::Unavailable(format!(
                    "the server is answering its limit of {} requests at once; try again",
                    admission.max
                ))
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            };
            match tokio::time::timeout(admission.timeout, next.run(request)).await {
                Ok(response) => response,
                // A write may still have taken effect: say so, so that a
                // client retries with an idempotency key, not blindly.
                Err(_) => ApiError::Unavailable(format!(
                    "the request took longer than {} ms; it may have taken effect, so retry \
                     a create with the same Idempotency-Key",
                    admission.timeout.as_millis()
                ))
                .into_response(),
            }
        })
        .await
}

/// A handler that panicked: a 500 problem, and the panic in the log.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::Internal(format!("a handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A handler that panics gets the client a 500 problem, and the server
    /// stays up for the next request.
    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem_and_the_server_lives_on() {
        async fn boom() -> &'static str {
            panic!("a bug in a handler")
        }
        let routes = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("bound");
        let server = tokio::spawn(async move {
            axum::serve(listener, guard(routes, 8, Duration::from_secs(5))).await
        });
        let get = |path: &'static str| async move {
            let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            socket.write_all(request.as_bytes()).await.expect("send");
            let mut answer = String::new();
            socket.read_to_string(&mut answer).await.expect("read");
            answer
        };
        let answer = get("/boom").await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(
            answer.contains("content-type: application/problem+json"),
            "{answer}"
        );
        assert!(answer.contains(r#""detail":"internal error""#), "{answer}");
        assert!(answer.contains(r#""requestId":""#), "{answer}");
        assert!(!answer.contains("a bug in a handler"), "no internals leak");
        let answer = get("/fine").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.abort();
    }
}

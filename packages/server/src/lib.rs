//! jobwire's HTTP and WebSocket API.
//!
//! [`serve`] takes a bound listener and a shutdown token (so tests bind port 0),
//! runs the one `job_updates` subscriber of this instance ([`fanout`]) and the
//! axum router, and on shutdown closes every WebSocket with 1001, drains
//! in-flight requests and returns.

mod auth;
mod dashboard;
mod error;
mod exposition;
mod extract;
mod fanout;
mod frame;
mod gaps;
mod guard;
mod health;
mod intake;
mod jobs;
mod leasing;
mod openapi;
mod origins;
mod payload;
mod quota;
mod remote;
mod session_limit;
mod state;
mod stats;
mod tenants;
mod ws;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{
    Claims, JwtKeys, KeyError, MIN_SECRET_BYTES, OPERATOR_ROLE, OperatorClaims, TokenRules,
    WORKER_ROLE, WorkerClaims,
};
pub use error::ApiError;
pub use exposition::Scrape;
pub use frame::Frame;
pub use openapi::{openapi, openapi_json};
pub use state::{AppState, Failpoint, Limits, WsConfig};

/// The routes of the API, on `state`: those of the OpenAPI document
/// (`openapi::routes`, the only place a route of the API is added), the
/// dashboard's pages, and problem+json answers for any other path or method.
pub fn router(state: AppState) -> Router {
    let limits = state.limits().clone();
    // The document itself is built once, by `openapi_json`, for `/openapi.json`.
    let (api, _) = openapi::routes().split_for_parts();
    let routes = api
        .route("/metrics", axum::routing::get(exposition::metrics))
        .merge(dashboard::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state);
    let routes = match origins::cors(&limits.allowed_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    guard::guard(routes, limits.max_in_flight, limits.request_timeout)
}

/// Serves the API on `listener` until `shutdown` fires, then drains.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let subscriber = tokio::spawn(fanout::run(state.clone(), shutdown.clone()));
    let leasing = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            let broker = state.broker().clone();
            state.leasing().keep_alive(broker, shutdown).await
        })
    };
    quota::publish(&state).await;
    let quotas = tokio::spawn(quota::keep_published(state.clone(), shutdown.clone()));
    // Without TCP_NODELAY, a frame written while the one before it is not
    // yet acknowledged waits for the client's delayed ACK: a job's `running`
    // right after its `queued` reached the WebSocket 40 ms late.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    let result = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    state.close_sessions().await;
    // The subscriber ends on `shutdown`; a panic inside it is reported here.
    if let Err(e) = subscriber.await {
        tracing::error!(error = %e, "the job_updates subscriber task failed");
    }
    if let Err(e) = quotas.await {
        tracing::error!(error = %e, "the quota publisher task failed");
    }
    if let Err(e) = leasing.await {
        tracing::error!(error = %e, "the lease taker's keep-alive task failed");
    }
    result
}

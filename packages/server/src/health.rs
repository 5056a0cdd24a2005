use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::{ApiError, AppState};

/// `GET /healthz`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Alive {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// `GET /readyz`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Ready {
    #[schema(value_type = String, pattern = "^ready$")]
    status: &'static str,
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process answers", body = Alive)),
)]
pub(crate) async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// Ready: the store and the broker answer and the update subscription is in
/// place (before that, a WebSocket client would miss updates).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The store and the broker answer, and updates are subscribed to", body = Ready),
        (status = 503, description = "Not ready: `detail` names what is down", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let (store, broker) = tokio::join!(state.store().ping(), state.broker().ping());
    let mut down = Vec::new();
    if let Err(e) = store {
        tracing::warn!(error = ?e, "readiness: store");
        down.push(format!(
            "the store ({}) is unreachable",
            state.store().describe()
        ));
    }
    if let Err(e) = broker {
        tracing::warn!(error = ?e, "readiness: broker");
        down.push(format!(
            "the broker ({}) is unreachable",
            state.broker().describe()
        ));
    }
    if !state.is_subscribed() {
        down.push("the update subscription is not in place yet".to_owned());
    }
    if down.is_empty() {
        Ok(Json(Ready { status: "ready" }))
    } else {
        Err(ApiError::Unavailable(down.join("; ")))
    }
}

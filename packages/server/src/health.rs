use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Alive: the process answers.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: Postgres and Redis answer and the `job_updates` subscription is in
/// place (before that, a WebSocket client would miss updates).
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (db, redis) = tokio::join!(state.store().ping(), state.broker().ping());
    let mut down = Vec::new();
    if let Err(e) = db {
        tracing::warn!(error = ?e, "readiness: Postgres");
        down.push("Postgres is unreachable");
    }
    if let Err(e) = redis {
        tracing::warn!(error = ?e, "readiness: Redis");
        down.push("Redis is unreachable");
    }
    if !state.is_subscribed() {
        down.push("the job_updates subscription is not in place yet");
    }
    if down.is_empty() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable(down.join("; ")))
    }
}

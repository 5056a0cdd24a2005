use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Alive: the process answers.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the store and the broker answer and the update subscription is in
/// place (before that, a WebSocket client would miss updates).
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
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
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable(down.join("; ")))
    }
}

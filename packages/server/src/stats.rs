//! `GET /v1/stats`: what a dashboard shows beside the job list.

use axum::Json;
use axum::extract::State;
use jobwire_core::{Priority, Status};
use serde_json::{Map, Value, json};

use crate::extract::Tenant;
use crate::{ApiError, AppState};

/// The tenant's queue depth: scheduled, queued and running jobs for every
/// priority, zeros included, so a chart has a fixed shape.
pub(crate) async fn stats(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Value>, ApiError> {
    let counts = state.store().active_counts(&tenant).await?;
    let mut queues = Map::new();
    for priority in Priority::ALL {
        let mut depth = Map::new();
        for status in [Status::Scheduled, Status::Queued, Status::Running] {
            let jobs = counts
                .iter()
                .find(|c| c.priority == priority && c.status == status)
                .map_or(0, |c| c.jobs);
            depth.insert(status.as_str().to_owned(), json!(jobs));
        }
        queues.insert(priority.as_str().to_owned(), Value::Object(depth));
    }
    Ok(Json(json!({ "queues": queues })))
}

//! `GET /v1/stats`: what a dashboard shows beside the job list.

use axum::Json;
use axum::extract::State;
use jobwire_core::{Priority, Status};
use serde::Serialize;

use crate::extract::Tenant;
use crate::{ApiError, AppState};

/// The tenant's queue depth per priority.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"queues": {
    "critical": {"scheduled": 0, "queued": 0, "running": 0},
    "high": {"scheduled": 0, "queued": 2, "running": 1},
    "default": {"scheduled": 3, "queued": 40, "running": 16},
    "low": {"scheduled": 0, "queued": 0, "running": 0}
}}))]
pub(crate) struct Stats {
    queues: Queues,
}

/// One [`Depth`] per priority, every priority always present.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Queues {
    critical: Depth,
    high: Depth,
    default: Depth,
    low: Depth,
}

/// Jobs of one priority that are not finished, by status.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Depth {
    #[schema(minimum = 0)]
    scheduled: i64,
    #[schema(minimum = 0)]
    queued: i64,
    #[schema(minimum = 0)]
    running: i64,
}

/// The tenant's queue depth: scheduled, queued and running jobs for every
/// priority, zeros included, so a chart has a fixed shape.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "getStats",
    tag = "jobs",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's scheduled, queued and running jobs per priority", body = Stats),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Stats>, ApiError> {
    let counts = state.store().active_counts(&tenant).await?;
    let depth = |priority: Priority| {
        let jobs = |status: Status| {
            counts
                .iter()
                .find(|c| c.priority == priority && c.status == status)
                .map_or(0, |c| c.jobs)
        };
        Depth {
            scheduled: jobs(Status::Scheduled),
            queued: jobs(Status::Queued),
            running: jobs(Status::Running),
        }
    };
    Ok(Json(Stats {
        queues: Queues {
            critical: depth(Priority::Critical),
            high: depth(Priority::High),
            default: depth(Priority::Default),
            low: depth(Priority::Low),
        },
    }))
}

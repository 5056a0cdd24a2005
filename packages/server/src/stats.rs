//! `GET /v1/stats`: what a dashboard shows beside the job list.

use axum::Json;
use axum::extract::State;
use jobwire_core::{Priority, Status};
use serde::Serialize;

use crate::extract::Tenant;
use crate::{ApiError, AppState};

/// The tenant's queue depth per priority.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"tenantBucket": "06", "queues": {
    "critical": {"scheduled": 0, "queued": 0, "running": 0},
    "high": {"scheduled": 0, "queued": 2, "running": 1},
    "default": {"scheduled": 3, "queued": 40, "running": 16},
    "low": {"scheduled": 0, "queued": 0, "running": 0}
}, "types": [
    {"type": "send-email", "scheduled": 3, "queued": 40, "running": 16, "workers": 2},
    {"type": "thumbnail", "scheduled": 0, "queued": 2, "running": 1, "workers": 0}
]}))]
pub(crate) struct Stats {
    /// The tenant's bucket, `"00"` to `"15"`: the `tenant_bucket` label its
    /// jobs are counted under in the metrics (which never name a tenant).
    #[serde(rename = "tenantBucket")]
    #[schema(pattern = "^[0-9]{2}$", example = "06")]
    tenant_bucket: &'static str,
    queues: Queues,
    /// Per job type the tenant has unfinished jobs of, by name.
    types: Vec<TypeDepth>,
}

/// The tenant's unfinished jobs of one type, and how many live workers
/// (built-in, custom or remote) run that type: with none, its jobs stay
/// `queued` until one starts.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TypeDepth {
    #[serde(rename = "type")]
    job_type: String,
    #[schema(minimum = 0)]
    scheduled: i64,
    #[schema(minimum = 0)]
    queued: i64,
    #[schema(minimum = 0)]
    running: i64,
    #[schema(minimum = 0)]
    workers: usize,
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
/// priority, zeros included, so a chart has a fixed shape; and per job type,
/// with the live workers that run it; and the tenant's bucket in the metrics.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "getStats",
    tag = "jobs",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's scheduled, queued and running jobs per priority and per type", body = Stats),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Stats>, ApiError> {
    let counts = state.store().active_counts(&tenant).await?;
    let workers = state.broker().live_types().await?;
    let depth = |priority: Priority| {
        let jobs = |status: Status| {
            counts
                .iter()
                .filter(|c| c.priority == priority && c.status == status)
                .map(|c| c.jobs)
                .sum()
        };
        Depth {
            scheduled: jobs(Status::Scheduled),
            queued: jobs(Status::Queued),
            running: jobs(Status::Running),
        }
    };
    let mut types: Vec<TypeDepth> = Vec::new();
    for count in &counts {
        let at = match types.iter().position(|t| t.job_type == count.job_type) {
            Some(at) => at,
            None => {
                types.push(TypeDepth {
                    job_type: count.job_type.clone(),
                    scheduled: 0,
                    queued: 0,
                    running: 0,
                    workers: workers
                        .iter()
                        .find(|(t, _)| *t == count.job_type)
                        .map_or(0, |(_, n)| *n),
                });
                types.len() - 1
            }
        };
        let depth = &mut types[at];
        match count.status {
            Status::Scheduled => depth.scheduled += count.jobs,
            Status::Queued => depth.queued += count.jobs,
            Status::Running => depth.running += count.jobs,
            Status::Succeeded | Status::Failed | Status::Cancelled => {}
        }
    }
    types.sort_by(|a, b| a.job_type.cmp(&b.job_type));
    Ok(Json(Stats {
        tenant_bucket: tenant.bucket_label(),
        types,
        queues: Queues {
            critical: depth(Priority::Critical),
            high: depth(Priority::High),
            default: depth(Priority::Default),
            low: depth(Priority::Low),
        },
    }))
}

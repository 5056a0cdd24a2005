//! Tenants' quotas at the API: creates checked against the queued-jobs cap
//! and the create rate (429 with `Retry-After` when over), and the running
//! caps and weights kept published in the broker for every worker's pops.

use std::time::Duration;

use jobwire_core::{Refusal, TenantId};
use tokio_util::sync::CancellationToken;

use crate::{ApiError, AppState};

/// How often the quotas are written to the broker again, so that a Redis
/// that restarted empty gets them back.
const REPUBLISH: Duration = Duration::from_secs(5);

/// How long a tenant whose queue is full is asked to wait: its queue
/// drains at the workers' pace, which the API does not know.
const QUEUE_FULL_RETRY: Duration = Duration::from_secs(1);

/// Admits `jobs` new jobs of `tenant`, or refuses them by its quota.
pub(crate) async fn admit(
    state: &AppState,
    tenant: &TenantId,
    jobs: usize,
) -> Result<(), ApiError> {
    let quota = state.limits().quotas.of(tenant);
    if !quota.limits_creates() {
        return Ok(());
    }
    let jobs = jobs as u64;
    let refusal = state.broker().admit(tenant, jobs, &quota).await?;
    if let Some(refusal) = &refusal {
        let reason = match refusal {
            Refusal::QueueFull { .. } => "queue_full",
            Refusal::RateLimited { .. } => "rate",
            Refusal::OverBurst { .. } => "burst",
            Refusal::OverQueue { .. } => "over_queue",
        };
        metrics::counter!(
            jobwire_metrics::TENANT_REFUSED,
            "tenant_bucket" => tenant.bucket_label(),
            "reason" => reason
        )
        .increment(1);
    }
    match refusal {
        None => Ok(()),
        Some(Refusal::QueueFull { queued, max }) => Err(ApiError::TooManyRequests {
            detail: format!(
                "tenant {tenant} has {queued} jobs queued and may have at most {max}; \
                 {jobs} more would pass it: try again once its workers have taken some"
            ),
            retry_after: QUEUE_FULL_RETRY,
        }),
        Some(Refusal::RateLimited { retry_after }) => Err(ApiError::TooManyRequests {
            detail: format!(
                "tenant {tenant} may create {} jobs a second (bursts of {}); try again in {} ms",
                quota.rate.unwrap_or_default(),
                quota.bucket().map_or(0, |(_, burst)| burst),
                retry_after.as_millis()
            ),
            retry_after,
        }),
        Some(Refusal::OverQueue { jobs, max }) => Err(ApiError::Unprocessable(format!(
            "{jobs} jobs at once is more than tenant {tenant} may ever have queued ({max}): \
             send at most {max} per request"
        ))),
        Some(Refusal::OverBurst { jobs, burst }) => Err(ApiError::Unprocessable(format!(
            "{jobs} jobs at once is more than tenant {tenant}'s create burst of {burst}: \
             send at most {burst} per request"
        ))),
    }
}

/// Publishes the running caps and weights the workers obey; the server does
/// so before it takes requests, then [`keep_published`] again and again.
pub(crate) async fn publish(state: &AppState) {
    if let Err(e) = state.broker().publish_quotas(&state.limits().quotas).await {
        tracing::warn!(error = %e, "cannot publish the tenants' running caps and weights");
    }
}

/// Publishes the running caps and weights every [`REPUBLISH`] until `shutdown`.
pub(crate) async fn keep_published(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + REPUBLISH, REPUBLISH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => publish(&state).await,
        }
    }
}

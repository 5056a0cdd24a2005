//! The worker protocol over HTTP, for workers in any language: lease jobs
//! with a long poll, then heartbeat, report progress, complete or fail each
//! under its lease token. The server claims, fences and announces exactly as
//! for built-in workers, so a remote worker's changes reach the tenant's
//! WebSockets the same way, and a lease that runs out re-queues the job.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jobwire_broker::Selection;
use jobwire_core::{Job, JobId, JobType, JobUpdate, Status, TenantId};
use jobwire_store::{LeaseToken, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Bearer, WorkerScope};
use crate::extract::{AppJson, JobIdPath};
use crate::jobs::whole;
use crate::leasing::RECHECK;
use crate::{ApiError, AppState};

/// The scope of the request's worker token; 401 without a valid token, 403
/// for a tenant's or an operator's token.
pub(crate) struct WorkerToken(pub WorkerScope);

impl FromRequestParts<AppState> for WorkerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match crate::extract::bearer(parts, state)? {
            Bearer::Worker(scope) => Ok(WorkerToken(scope)),
            Bearer::Tenant(_) | Bearer::Operator => Err(ApiError::Forbidden(
                "this is not a worker token: the /v1/worker/ routes need a worker token (`role: \
                 worker`; `jobwire token --worker` makes one)"
                    .into(),
            )),
        }
    }
}

/// A JSON object body read as `T`: serde would also read a struct from a
/// JSON array, which the protocol never sends (and whose missing fields
/// would default, a 30 s wait for a lease).
pub(crate) struct Object<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for Object<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, ApiError> {
        let AppJson(body) =
            AppJson::<serde_json::Map<String, Value>>::from_request(req, state).await?;
        serde_json::from_value(Value::Object(body))
            .map(Object)
            .map_err(|e| ApiError::Unprocessable(e.to_string()))
    }
}

const MAX_LEASE_JOBS: usize = 100;
const MAX_WAIT_MS: u64 = 60_000;
const DEFAULT_WAIT_MS: u64 = 30_000;
const LEASE_MS: std::ops::RangeInclusive<u64> = 1_000..=600_000;
const DEFAULT_LEASE_MS: u64 = 30_000;

/// What a remote worker asks for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"types": ["thumbnail"], "max": 10, "waitMs": 5000, "leaseMs": 30000}))]
pub(crate) struct LeaseRequest {
    /// The job types this worker runs; default: the token's types (required
    /// when the token allows any type).
    #[serde(default)]
    #[schema(min_items = 1)]
    types: Option<Vec<JobType>>,
    /// Most jobs to take, 1 to 100; default 1.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 100)]
    max: Option<u64>,
    /// How long to wait for a job when none is queued, 0 to 60000 ms (at most
    /// the API's request timeout); default 30000.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 0, maximum = 60000)]
    wait_ms: Option<u64>,
    /// How long each lease lasts unless renewed by a heartbeat, 1000 to
    /// 600000 ms; default 30000.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1000, maximum = 600000)]
    lease_ms: Option<u64>,
}

/// A job leased to a remote worker.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeasedJob {
    id: JobId,
    tenant_id: TenantId,
    #[serde(rename = "type")]
    job_type: JobType,
    /// Any JSON, as created.
    #[schema(value_type = Value)]
    payload: Value,
    /// 1 on the first run.
    attempt: i32,
    max_attempts: i32,
    /// The job's own time limit per attempt, if it has one.
    #[schema(required = true)]
    timeout_ms: Option<i64>,
    /// Proves this attempt: send it with every report about the job.
    lease_token: String,
    /// When the lease runs out unless a heartbeat renews it.
    lease_expires_at: DateTime<Utc>,
}

impl LeasedJob {
    fn new(job: Job, token: LeaseToken, lease: Duration) -> Self {
        Self {
            id: job.id,
            tenant_id: job.tenant_id,
            job_type: job.job_type,
            payload: job.payload,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            timeout_ms: job.timeout_ms,
            lease_token: token.0,
            lease_expires_at: expires(lease),
        }
    }
}

fn expires(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default()
}

fn check_range(
    name: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ApiError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::Unprocessable(format!(
            "`{name}` must be from {} to {}",
            range.start(),
            range.end()
        )))
    }
}

/// The types a lease takes: those asked for, each allowed by the token.
fn leased_types(
    scope: &WorkerScope,
    asked: Option<Vec<JobType>>,
) -> Result<Vec<JobType>, ApiError> {
    let types = match (asked, &scope.types) {
        (Some(asked), _) if asked.is_empty() => {
            return Err(ApiError::Unprocessable(
                "`types` must name at least one job type".into(),
            ));
        }
        (Some(asked), _) => asked,
        (None, Some(allowed)) => allowed.clone(),
        (None, None) => {
            return Err(ApiError::Unprocessable(
                "say which job types this worker runs in `types`: its token allows any".into(),
            ));
        }
    };
    if let Some(allowed) = &scope.types
        && let Some(refused) = types.iter().find(|t| !allowed.contains(t))
    {
        return Err(ApiError::Forbidden(format!(
            "this worker token may not take jobs of type `{refused}`"
        )));
    }
    Ok(types)
}

/// Takes up to `max` queued jobs of the worker's types (and tenants),
/// waiting up to `waitMs` for one; the jobs are `running` under a lease of
/// `leaseMs` each, renewed by heartbeats.
#[utoipa::path(
    post,
    path = "/v1/worker/lease",
    operation_id = "leaseJobs",
    tag = "workers",
    security(("bearer" = [])),
    request_body = LeaseRequest,
    responses(
        (status = 200, description = "The jobs leased: as soon as any is queued, or none once `waitMs` has passed", body = Vec<LeasedJob>),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a worker token, or a type it may not take", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over JOBWIRE_MAX_BODY_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field of the wrong type or out of range, or no `types` with a token for any type", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn lease(
    State(state): State<AppState>,
    WorkerToken(scope): WorkerToken,
    Object(request): Object<LeaseRequest>,
) -> Result<Json<Vec<LeasedJob>>, ApiError> {
    let types = leased_types(&scope, request.types)?;
    let max = check_range("max", request.max.unwrap_or(1), 1..=MAX_LEASE_JOBS as u64)? as usize;
    let wait = check_range(
        "waitMs",
        request.wait_ms.unwrap_or(DEFAULT_WAIT_MS),
        0..=MAX_WAIT_MS,
    )?;
    let lease = check_range(
        "leaseMs",
        request.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
        LEASE_MS,
    )?;
    let lease = Duration::from_millis(lease);
    // Answered before the request timeout cuts the poll short.
    let wait = Duration::from_millis(wait).min(
        state
            .limits()
            .request_timeout
            .saturating_sub(Duration::from_secs(1)),
    );
    let selection = Selection {
        types: types.clone(),
        tenants: scope.tenants.clone().unwrap_or_default(),
    };
    if scope.tenants.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Json(Vec::new()));
    }
    let owner = format!("http:{}", scope.name);
    // Counted as a live worker of its types while it polls and runs what it took.
    state
        .broker()
        .worker_alive(&owner, wait + lease, &types)
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let leasing = state.leasing();
    loop {
        let waiters = leasing.waiters(&types);
        let mut woken: Vec<_> = waiters.iter().map(|w| Box::pin(w.notified())).collect();
        for notified in &mut woken {
            notified.as_mut().enable();
        }
        let claims = leasing
            .take(
                state.store(),
                state.broker(),
                &selection,
                &owner,
                max,
                lease,
            )
            .await?;
        if !claims.is_empty() {
            tracing::debug!(worker = %scope.name, jobs = claims.len(), "jobs leased to a remote worker");
            return Ok(Json(
                claims
                    .into_iter()
                    .map(|claim| LeasedJob::new(claim.job, claim.token, lease))
                    .collect(),
            ));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline || state.shutdown().is_cancelled() {
            return Ok(Json(Vec::new()));
        }
        let until = deadline.min(now + RECHECK);
        tokio::select! {
            _ = futures_util::future::select_all(woken) => {}
            _ = tokio::time::sleep_until(until) => {}
            _ = state.shutdown().cancelled() => {}
        }
    }
}

/// A report about one leased job carries the attempt's lease token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Heartbeat {
    lease_token: String,
    /// How long the lease lasts from now, 1000 to 600000 ms; default 30000.
    #[serde(default, deserialize_with = "whole")]
    #[schema(minimum = 1000, maximum = 600000)]
    lease_ms: Option<u64>,
}

/// Whether to go on with the job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HeartbeatReply {
    /// The job was cancelled: stop working on it; nothing more to report.
    cancelled: bool,
    /// When the renewed lease runs out (absent when cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_expires_at: Option<DateTime<Utc>>,
}

fn stale(id: JobId) -> ApiError {
    ApiError::Conflict(format!(
        "this lease token no longer holds job {id}: its lease ran out (the job was queued again \
         or taken by another worker), or the attempt already ended"
    ))
}

/// The job of a report, if this token's scope covers it (anything else is
/// answered as a stale lease: it tells nothing of other tenants' jobs).
fn in_scope(scope: &WorkerScope, job: &Job) -> bool {
    scope
        .tenants
        .as_ref()
        .is_none_or(|t| t.contains(&job.tenant_id))
        && scope
            .types
            .as_ref()
            .is_none_or(|t| t.contains(&job.job_type))
}

/// Renews a leased job's lease; says whether the job was cancelled.
#[utoipa::path(
    post,
    path = "/v1/worker/jobs/{id}/heartbeat",
    operation_id = "heartbeatJob",
    tag = "workers",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's ID")),
    request_body = Heartbeat,
    responses(
        (status = 200, description = "Renewed; or the job was cancelled", body = HeartbeatReply),
        (status = 400, description = "Malformed JSON, or the ID is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a worker token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token no longer holds the job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over JOBWIRE_MAX_BODY_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field missing, of the wrong type or out of range", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    WorkerToken(scope): WorkerToken,
    JobIdPath(id): JobIdPath,
    Object(beat): Object<Heartbeat>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let lease = check_range(
        "leaseMs",
        beat.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
        LEASE_MS,
    )?;
    let lease = Duration::from_millis(lease);
    let token = LeaseToken(beat.lease_token);
    match state.store().renew(id, &token, lease).await? {
        Some(job) if in_scope(&scope, &job) => Ok(Json(HeartbeatReply {
            cancelled: false,
            lease_expires_at: Some(expires(lease)),
        })),
        Some(_) => Err(stale(id)),
        None => match state.store().find(id).await? {
            Some(job) if job.status == Status::Cancelled && in_scope(&scope, &job) => {
                Ok(Json(HeartbeatReply {
                    cancelled: true,
                    lease_expires_at: None,
                }))
            }
            Some(_) => Err(stale(id)),
            None => Err(ApiError::JobNotFound(id)),
        },
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ProgressReport {
    lease_token: String,
    /// Any JSON: shown to the tenant's clients as the job's progress.
    #[schema(value_type = Value)]
    progress: Value,
}

/// Records a leased job's progress and pushes it to the tenant's clients.
#[utoipa::path(
    post,
    path = "/v1/worker/jobs/{id}/progress",
    operation_id = "reportProgress",
    tag = "workers",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's ID")),
    request_body = ProgressReport,
    responses(
        (status = 204, description = "Recorded and published"),
        (status = 400, description = "Malformed JSON, or the ID is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a worker token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token no longer holds the job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over JOBWIRE_MAX_BODY_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field missing, of the wrong type or out of range", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn progress(
    State(state): State<AppState>,
    WorkerToken(scope): WorkerToken,
    JobIdPath(id): JobIdPath,
    Object(report): Object<ProgressReport>,
) -> Result<StatusCode, ApiError> {
    leased_job(&state, &scope, id).await?;
    let token = LeaseToken(report.lease_token);
    let job = state
        .store()
        .report_progress(id, &token, &report.progress)
        .await?
        .ok_or_else(|| stale(id))?;
    if let Err(e) = state
        .broker()
        .publish(&JobUpdate::from(&job).to_json())
        .await
    {
        // The store has it; clients catch up through gap filling.
        tracing::warn!(job_id = %id, error = %e, "cannot publish a remote worker's progress");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The running job a report is about, within the worker token's scope;
/// 404 when there is no such job, 409 otherwise. The write that follows
/// checks the lease token itself.
async fn leased_job(state: &AppState, scope: &WorkerScope, id: JobId) -> Result<Job, ApiError> {
    match state.store().find(id).await? {
        Some(job) if job.status == Status::Running && in_scope(scope, &job) => Ok(job),
        Some(_) => Err(stale(id)),
        None => Err(ApiError::JobNotFound(id)),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Completion {
    lease_token: String,
    /// Any JSON: the job's result; default null.
    #[serde(default)]
    #[schema(value_type = Value)]
    result: Value,
}

/// Ends a leased job's attempt as `succeeded` with its result.
#[utoipa::path(
    post,
    path = "/v1/worker/jobs/{id}/complete",
    operation_id = "completeJob",
    tag = "workers",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's ID")),
    request_body = Completion,
    responses(
        (status = 204, description = "Stored and published"),
        (status = 400, description = "Malformed JSON, or the ID is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a worker token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token no longer holds the job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over JOBWIRE_MAX_BODY_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field missing, of the wrong type or out of range", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn complete(
    State(state): State<AppState>,
    WorkerToken(scope): WorkerToken,
    JobIdPath(id): JobIdPath,
    Object(done): Object<Completion>,
) -> Result<StatusCode, ApiError> {
    leased_job(&state, &scope, id).await?;
    finish(
        &state,
        id,
        done.lease_token,
        Outcome::Succeeded(done.result),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Failure {
    lease_token: String,
    /// Why the attempt failed: stored as the job's error.
    error: String,
    /// Whether another attempt may succeed: then it runs again after the
    /// server's backoff while attempts are left. Default true.
    #[serde(default)]
    retryable: Option<bool>,
}

/// Ends a leased job's attempt as failed: retried later while attempts are
/// left (unless not retryable), else `failed`.
#[utoipa::path(
    post,
    path = "/v1/worker/jobs/{id}/fail",
    operation_id = "failJob",
    tag = "workers",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job's ID")),
    request_body = Failure,
    responses(
        (status = 204, description = "Stored and published"),
        (status = 400, description = "Malformed JSON, or the ID is not a UUID", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a worker token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token no longer holds the job", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over JOBWIRE_MAX_BODY_BYTES", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field missing, of the wrong type or out of range", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn fail(
    State(state): State<AppState>,
    WorkerToken(scope): WorkerToken,
    JobIdPath(id): JobIdPath,
    Object(failure): Object<Failure>,
) -> Result<StatusCode, ApiError> {
    let job = leased_job(&state, &scope, id).await?;
    let outcome = if failure.retryable.unwrap_or(true) {
        state.retry().after_failure(&job, failure.error)
    } else {
        Outcome::Failed(failure.error)
    };
    finish(&state, id, failure.lease_token, outcome).await
}

/// Stores an attempt's outcome under its lease token, then announces it.
async fn finish(
    state: &AppState,
    id: JobId,
    token: String,
    outcome: Outcome,
) -> Result<StatusCode, ApiError> {
    let job = state
        .store()
        .finish(id, &LeaseToken(token), outcome)
        .await?
        .ok_or_else(|| stale(id))?;
    jobwire_metrics::type_series(job.job_type.as_str()).ended(job.status.as_str());
    if let Err(e) = state.broker().announce(std::slice::from_ref(&job)).await {
        // Stored: clients catch up through gap filling, and re-dispatch queues a retry.
        tracing::warn!(job_id = %id, error = %e, "cannot announce a remote worker's outcome");
    }
    Ok(StatusCode::NO_CONTENT)
}

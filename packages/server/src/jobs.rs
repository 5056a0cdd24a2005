//! The REST resource `/v1/jobs`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use jobwire_core::{Job, JobId, JobType, JobUpdate, NewJob, Priority, Status, TenantId};
use jobwire_store::ListFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::{AppJson, JobIdPath, Tenant};
use crate::{ApiError, AppState, Limits};

/// Body of `POST /v1/jobs`, and one entry of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateJob {
    #[serde(rename = "type")]
    job_type: JobType,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    priority: Priority,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBatch {
    jobs: Vec<CreateJob>,
}

impl CreateJob {
    fn into_new_job(self, tenant: &TenantId, limits: &Limits) -> Result<NewJob, ApiError> {
        let payload = self
            .payload
            .unwrap_or_else(|| Value::Object(Default::default()));
        let size = json_len(&payload);
        if size > limits.max_payload_bytes {
            return Err(ApiError::PayloadTooLarge(format!(
                "the payload is {size} bytes of JSON; the limit is {} bytes",
                limits.max_payload_bytes
            )));
        }
        Ok(NewJob {
            id: JobId::new(),
            tenant: tenant.clone(),
            job_type: self.job_type,
            payload,
            priority: self.priority,
        })
    }
}

/// Length of `value` serialised, without building the string.
fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a Value to an infallible writer cannot fail.
    serde_json::to_writer(&mut counter, value).map_or(usize::MAX, |()| counter.0)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    AppJson(body): AppJson<CreateJob>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let new = body.into_new_job(&tenant, state.limits())?;
    let mut jobs = dispatch(&state, vec![new]).await?;
    let job = jobs
        .pop()
        .ok_or_else(|| ApiError::Unavailable("the job was not stored; try again".into()))?;
    Ok((StatusCode::CREATED, Json(job)))
}

#[derive(Serialize)]
pub(crate) struct JobList {
    jobs: Vec<Job>,
    #[serde(rename = "nextCursor")]
    next_cursor: Option<JobId>,
}

pub(crate) async fn create_batch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    AppJson(body): AppJson<CreateBatch>,
) -> Result<(StatusCode, Json<JobList>), ApiError> {
    let max = state.limits().max_batch;
    if body.jobs.is_empty() || body.jobs.len() > max {
        return Err(ApiError::Unprocessable(format!(
            "a batch holds 1 to {max} jobs; this one has {}",
            body.jobs.len()
        )));
    }
    let new = body
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            job.into_new_job(&tenant, state.limits())
                .map_err(|e| match e {
                    ApiError::PayloadTooLarge(detail) => {
                        ApiError::PayloadTooLarge(format!("jobs[{i}]: {detail}"))
                    }
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let jobs = dispatch(&state, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(JobList {
            jobs,
            next_cursor: None,
        }),
    ))
}

/// Commits the jobs, then announces and enqueues them. Once the insert has
/// committed the jobs exist; a Redis failure after it is logged, not returned,
/// so a client does not retry and create them twice.
async fn dispatch(state: &AppState, new: Vec<NewJob>) -> Result<Vec<Job>, ApiError> {
    let jobs = state.store().insert(&new).await?;
    let queued: Vec<(JobId, Priority)> = jobs.iter().map(|j| (j.id, j.priority)).collect();
    let updates: Vec<String> = jobs.iter().map(|j| JobUpdate::from(j).to_json()).collect();
    if let Err(e) = state.broker().enqueue(&queued, &updates).await {
        tracing::error!(error = ?e, jobs = jobs.len(), "jobs committed but not enqueued");
    }
    Ok(jobs)
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    state
        .store()
        .get(&tenant, id)
        .await?
        .map(Json)
        .ok_or(ApiError::JobNotFound(id))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    let job = state.store().cancel(&tenant, id).await?;
    if let Err(e) = state
        .broker()
        .publish(&JobUpdate::from(&job).to_json())
        .await
    {
        tracing::warn!(job = %id, error = ?e, "cannot publish the cancellation");
    }
    Ok(Json(job))
}

/// Query of `GET /v1/jobs`; values are strings so that a bad one gets our error.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

impl ListQuery {
    fn into_filter(self) -> Result<ListFilter, ApiError> {
        let invalid = |e: jobwire_core::InvalidValue| ApiError::Unprocessable(e.to_string());
        let limit = match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_PAGE,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "`limit` must be a whole number from 1 to {MAX_PAGE}; got `{raw}`"
                    ))
                })?,
        };
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(ListFilter {
            status: nonempty(self.status)
                .map(|s| s.parse::<Status>())
                .transpose()
                .map_err(invalid)?,
            job_type: nonempty(self.job_type)
                .map(|s| s.parse::<JobType>())
                .transpose()
                .map_err(invalid)?,
            before: nonempty(self.cursor)
                .map(|s| s.parse::<JobId>())
                .transpose()
                .map_err(|e| ApiError::Unprocessable(format!("bad `cursor`: {e}")))?,
            limit,
        })
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let page = state.store().list(&tenant, &query.into_filter()?).await?;
    Ok(Json(JobList {
        jobs: page.jobs,
        next_cursor: page.next_cursor,
    }))
}

//! The REST resource `/v1/jobs`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use jobwire_core::{
    DEFAULT_MAX_ATTEMPTS, Idempotency, Job, JobId, JobType, NewJob, Priority, Status, TenantId,
    json_len, parse_retain_for,
};
use jobwire_store::{Inserted, ListFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::{AppJson, JobIdPath, Tenant};
use crate::intake::announce_job;
use crate::{ApiError, AppState, Limits};

/// Body of `POST /v1/jobs`, and one entry of a batch.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateJob {
    #[serde(rename = "type")]
    job_type: JobType,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    max_attempts: Option<i32>,
    /// Not before this time (RFC 3339).
    #[serde(default)]
    run_at: Option<DateTime<Utc>>,
    /// Not before this many milliseconds from now.
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    idempotency_key: Option<String>,
    /// How long to keep the job once finished (humantime: `90s`, `7d`),
    /// instead of its final status's retention. Left out of the request's
    /// hash when absent, so keys used before it existed hash as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retain_for: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBatch {
    jobs: Vec<CreateJob>,
}

const MAX_ATTEMPTS: i32 = 100;
const MAX_KEY_LEN: usize = 255;
/// Furthest ahead a job may be scheduled (`runAt`, `delayMs`): a hundred
/// years. Beyond it a time is a mistake (`1e16` milliseconds is 300,000
/// years), and the arithmetic on it would overflow.
const MAX_DELAY_MS: u64 = 36_525 * 24 * 3600 * 1000;
/// Longest `timeoutMs`: a week.
const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;

impl CreateJob {
    fn into_new_job(self, tenant: &TenantId, limits: &Limits) -> Result<NewJob, ApiError> {
        let invalid = |detail: String| Err(ApiError::Unprocessable(detail));
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return invalid(format!("`maxAttempts` must be from 1 to {MAX_ATTEMPTS}"));
        }
        if let Some(ms) = self
            .timeout_ms
            .filter(|ms| !(1..=MAX_TIMEOUT_MS).contains(ms))
        {
            return invalid(format!(
                "`timeoutMs` must be from 1 to {MAX_TIMEOUT_MS} (a week), not {ms}"
            ));
        }
        let now = Utc::now();
        // Far inside chrono's range, so the sum cannot overflow.
        let latest = now + chrono::Duration::milliseconds(MAX_DELAY_MS as i64);
        let run_at = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => return invalid("give `runAt` or `delayMs`, not both".into()),
            (Some(at), None) if at > latest || at < DateTime::UNIX_EPOCH => {
                return invalid(format!(
                    "`runAt` must be from 1970 to a hundred years ahead ({}), not {}",
                    latest.to_rfc3339(),
                    at.to_rfc3339()
                ));
            }
            (Some(at), None) => Some(at),
            (None, Some(ms)) if ms > MAX_DELAY_MS => {
                return invalid(format!(
                    "`delayMs` must be at most {MAX_DELAY_MS} (a hundred years), not {ms}"
                ));
            }
            (None, Some(ms)) => Some(now + chrono::Duration::milliseconds(ms as i64)),
            (None, None) => None,
        };
        let idempotency = match &self.idempotency_key {
            Some(key) if key.is_empty() || key.len() > MAX_KEY_LEN => {
                return invalid(format!(
                    "an idempotency key has 1 to {MAX_KEY_LEN} characters"
                ));
            }
            Some(key) => Some(Idempotency {
                key: key.clone(),
                request_hash: request_hash(&self),
            }),
            None => None,
        };
        let retain_for = self
            .retain_for
            .as_deref()
            .map(parse_retain_for)
            .transpose()
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
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
            max_attempts,
            run_at,
            // At most a week, checked above.
            timeout_ms: self.timeout_ms.map(|ms| ms as i64),
            idempotency,
            retain_for,
        })
    }
}

/// A stable fingerprint of a create request (without its key): FNV-1a over
/// its JSON, so the same key with another body can be told apart.
fn request_hash(job: &CreateJob) -> String {
    let text = serde_json::to_string(job).unwrap_or_default();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    AppJson(mut body): AppJson<CreateJob>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    if let Some(header) = headers.get("idempotency-key") {
        let header = header
            .to_str()
            .map_err(|_| ApiError::BadRequest("the Idempotency-Key header must be text".into()))?;
        match &body.idempotency_key {
            Some(field) if field != header => {
                return Err(ApiError::Unprocessable(
                    "the Idempotency-Key header and the `idempotencyKey` field differ".into(),
                ));
            }
            _ => body.idempotency_key = Some(header.to_owned()),
        }
    }
    let new = body.into_new_job(&tenant, state.limits())?;
    let inserted = state.intake().create(vec![new]).await?.pop();
    match inserted {
        Some(Inserted::Created(job)) => Ok((StatusCode::CREATED, Json(job))),
        Some(Inserted::Existing(job)) => Ok((StatusCode::OK, Json(job))),
        None => Err(ApiError::Unavailable(
            "the job was not stored; try again".into(),
        )),
    }
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
                    ApiError::Unprocessable(detail) => {
                        ApiError::Unprocessable(format!("jobs[{i}]: {detail}"))
                    }
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inserted = state.intake().create(new).await?;
    let status = if inserted.iter().any(|i| matches!(i, Inserted::Created(_))) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let jobs = inserted.iter().map(|i| i.job().clone()).collect();
    Ok((
        status,
        Json(JobList {
            jobs,
            next_cursor: None,
        }),
    ))
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
    announce_job(state.broker(), &job).await;
    Ok(Json(job))
}

/// Queues a failed (dead-lettered) or cancelled job again.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JobIdPath(id): JobIdPath,
) -> Result<Json<Job>, ApiError> {
    let job = state.store().retry(&tenant, id).await?;
    announce_job(state.broker(), &job).await;
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

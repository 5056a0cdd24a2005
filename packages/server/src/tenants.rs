//! `GET /v1/tenants`: the operators' view across tenants, with an operator
//! token only. A tenant's token sees its own counts in `/v1/stats`; this
//! route shows every tenant's, so it is kept apart behind its own role
//! (and an operator token reads no tenant's jobs: see [`crate::auth`]).

use axum::Json;
use axum::extract::{Query, State};
use jobwire_core::TenantId;
use serde::{Deserialize, Serialize};

use crate::extract::Operator;
use crate::{ApiError, AppState};

/// Tenants listed when the query gives no `limit`.
const DEFAULT_TENANTS: u32 = 100;
/// The most tenants one answer lists: with a million tenants queueing, the
/// answer stays a page, not a dump.
const MAX_TENANTS: u32 = 1000;

/// Query of `GET /v1/tenants`; a string, so that a bad one gets our error.
#[derive(Debug, Deserialize)]
pub(crate) struct TenantsQuery {
    limit: Option<String>,
}

/// The tenants with unfinished jobs, most queued first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"tenants": [
    {"tenantId": "acme", "tenantBucket": "06", "scheduled": 3, "queued": 5000, "running": 16},
    {"tenantId": "globex", "tenantBucket": "01", "scheduled": 0, "queued": 2, "running": 1}
], "total": 2}))]
pub(crate) struct TenantList {
    /// At most `limit` tenants: most queued first, then most running, most
    /// scheduled, and by ID.
    tenants: Vec<TenantDepth>,
    /// How many tenants have unfinished jobs, listed or not.
    #[schema(minimum = 0)]
    total: i64,
}

/// One tenant's scheduled, queued and running jobs, and its bucket: the
/// `tenant_bucket` label of the per-bucket metrics, so that a busy bucket in
/// Grafana can be traced to its tenants here.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TenantDepth {
    tenant_id: TenantId,
    /// `"00"` to `"15"`.
    #[schema(pattern = "^[0-9]{2}$", example = "06")]
    tenant_bucket: &'static str,
    #[schema(minimum = 0)]
    scheduled: i64,
    #[schema(minimum = 0)]
    queued: i64,
    #[schema(minimum = 0)]
    running: i64,
}

/// Every tenant with scheduled, queued or running jobs, with those counts and
/// its tenant bucket, most queued first; at most `limit` of them (100 when
/// missing, 1000 at most). Operator tokens only (`jobwire token --operator`).
#[utoipa::path(
    get,
    path = "/v1/tenants",
    operation_id = "listTenants",
    tag = "operators",
    security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Tenants listed (100 when missing)"),
    ),
    responses(
        (status = 200, description = "The tenants with unfinished jobs, most queued first", body = TenantList),
        (status = 400, description = "A query that cannot be read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "A tenant's or a worker's token: this route takes an operator token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A `limit` out of range (`detail` says so)", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _operator: Operator,
    query: Result<Query<TenantsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TenantList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match query.limit.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_TENANTS,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_TENANTS).contains(n))
            .ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "`limit` must be a whole number from 1 to {MAX_TENANTS}; got `{raw}`"
                ))
            })?,
    };
    let page = state.store().tenant_counts(limit).await?;
    Ok(Json(TenantList {
        total: page.total,
        tenants: page
            .tenants
            .into_iter()
            .map(|counts| TenantDepth {
                tenant_bucket: counts.tenant.bucket_label(),
                tenant_id: counts.tenant,
                scheduled: counts.scheduled,
                queued: counts.queued,
                running: counts.running,
            })
            .collect(),
    }))
}

//! Extractors whose rejections are [`ApiError`]s, so every bad request gets
//! the same problem+json body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use jobwire_core::{JobId, TenantId};
use serde::de::DeserializeOwned;

use crate::auth::Bearer;
use crate::{ApiError, AppState};

/// A JSON body: 415 without a JSON content type, 413 over the body limit,
/// 400 for malformed JSON, 422 for JSON of the wrong shape.
pub(crate) struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let limit = state.limits().max_body_bytes;
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::PayloadTooLarge(format!("the request body is over {limit} bytes"))
            })?;
        parse_json(&body).map(AppJson)
    }
}

fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(e.to_string()),
        _ => ApiError::BadRequest(format!("malformed JSON: {e}")),
    })
}

/// The tenant of the request's `Authorization: Bearer <JWT>`.
pub(crate) struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tenant = bearer(parts, state)?.tenant()?;
        tracing::Span::current().record("tenant", tracing::field::display(&tenant));
        Ok(Tenant(tenant))
    }
}

/// The operator of the request's `Authorization: Bearer <JWT>`: an operator
/// token (`role: operator`); 403 for a tenant's or a worker's token.
pub(crate) struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts, state)? {
            Bearer::Operator => Ok(Operator),
            Bearer::Tenant(_) | Bearer::Worker(_) => Err(ApiError::Forbidden(
                "this route is for operators: it shows every tenant, so it takes an operator \
                 token (`jobwire token --operator`), not a tenant's or a worker's"
                    .into(),
            )),
        }
    }
}

/// Who the request's `Authorization: Bearer <JWT>` speaks for.
pub(crate) fn bearer(parts: &Parts, state: &AppState) -> Result<Bearer, ApiError> {
    let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(crate::auth::bearer_token)
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })?;
    state.keys().verify_bearer(token)
}

/// The `{id}` of a job route.
pub(crate) struct JobIdPath(pub JobId);

impl FromRequestParts<AppState> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        raw.parse()
            .map(JobIdPath)
            .map_err(|e: jobwire_core::InvalidValue| ApiError::BadRequest(e.to_string()))
    }
}

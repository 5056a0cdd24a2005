//! The API contract: an OpenAPI 3.1 document generated from the handlers'
//! `#[utoipa::path]` annotations and the types they take and return, served
//! at `/openapi.json` and committed as `docs/openapi.json` (a test keeps the
//! two equal, so a change of the contract shows in review).
//!
//! The routes of the API are registered here, through [`OpenApiRouter`], so a
//! route cannot be served without being in the document.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Problem;
use crate::{AppState, health, jobs, remote, stats, tenants, ws};

/// The document's fixed parts; the paths come from [`routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobwire",
        description = "A real-time job service: create jobs over REST, follow every change over \
                       a WebSocket (`GET /v1/ws`; its frames are described in the README). Every \
                       response carries an `x-request-id` header (the client's own, or a new \
                       one), which every server log line about the request carries too. Errors \
                       are `application/problem+json` (RFC 9457).",
        license(name = "MIT", identifier = "MIT"),
    ),
    modifiers(&Security),
    components(schemas(Problem)),
    tags(
        (name = "jobs", description = "Create, read, list, cancel and retry jobs"),
        (name = "realtime", description = "Every change of the tenant's jobs, pushed"),
        (name = "operations", description = "Health, readiness and this document"),
        (name = "workers", description = "The worker protocol: workers in any language lease jobs and report on them, with a worker token"),
        (name = "operators", description = "Every tenant at once, with an operator token (`jobwire token --operator`), which reads no tenant's jobs"),
    )
)]
struct Fixed;

/// The two ways to present a token: the `Authorization` header, or (for a
/// browser's WebSocket, which cannot set headers) a `token` query parameter.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An HS256 JWT signed with JOBWIRE_JWT_SECRET, with the claims `tenant` \
                         and `exp` (and `iat`, `aud`, `iss` where the server requires them); \
                         `jobwire token --tenant <name>` makes one. Worker tokens (`role: \
                         worker`, `jobwire token --worker`) serve the `workers` routes only, \
                         operator tokens (`role: operator`, `jobwire token --operator`) the \
                         `operators` routes only.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The same JWT as a query parameter, for browsers' WebSockets (`GET /v1/ws` only).",
            ))),
        );
    }
}

/// The API's routes, each with its part of the document.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Fixed::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(document))
        .routes(routes!(jobs::create, jobs::list))
        .routes(routes!(jobs::create_batch))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(stats::stats))
        .routes(routes!(tenants::list))
        .routes(routes!(ws::upgrade))
        .routes(routes!(remote::lease))
        .routes(routes!(remote::heartbeat))
        .routes(routes!(remote::progress))
        .routes(routes!(remote::complete))
        .routes(routes!(remote::fail))
}

/// The whole document: [`routes`]' paths, with what every route shares
/// and what utoipa has no words for.
pub fn openapi() -> Value {
    let (_, mut document) = routes().split_for_parts();
    add_shared_responses(&mut document);
    // A document of plain strings and maps always converts.
    let mut document = serde_json::to_value(&document).expect("the OpenAPI document serialises");
    allow_empty_query_values(&mut document);
    forbid_run_at_with_delay(&mut document);
    document
}

/// The document as served and committed: pretty JSON and a final newline.
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // A Value always serialises.
        let mut json =
            serde_json::to_string_pretty(&openapi()).expect("the OpenAPI document serialises");
        json.push('\n');
        json
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    security(()),
    responses((status = 200, description = "This OpenAPI document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

/// What the layers in front of every route ([`crate::guard`]) add to each
/// answer: the `x-request-id` header on every response, and a 500 (a handler
/// panicked, or the database refused a query) and a 503 (too many requests
/// at once, or the request's deadline passed) on every route that does not
/// describe its own.
fn add_shared_responses(document: &mut Document) {
    let request_id = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "The request's ID: the client's own `x-request-id`, or a new UUID. Every server log \
             line about the request carries it, and a problem body repeats it as `requestId`.",
        ))
        .build();
    let internal = problem(
        "A fault in jobwire (a handler panicked, the database refused a query), logged whole \
         with the request ID; the body says no more.",
    );
    let unavailable = problem(
        "The store or the broker is unavailable, the server is answering its most requests at \
         once (JOBWIRE_MAX_IN_FLIGHT; with `Retry-After`), or the request took longer than \
         JOBWIRE_REQUEST_TIMEOUT: try again.",
    );
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            let responses = &mut operation.responses.responses;
            responses
                .entry("500".into())
                .or_insert_with(|| internal.clone().into());
            responses
                .entry("503".into())
                .or_insert_with(|| unavailable.clone().into());
            for response in responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("x-request-id".into(), request_id.clone());
                }
            }
        }
    }
}

/// The query parameters of `GET /v1/jobs`, `GET /v1/tenants` and
/// `GET /v1/ws` may be sent empty (`?status=&type=echo`, as an HTML form
/// sends them): an empty value is the same as none.
fn allow_empty_query_values(document: &mut Value) {
    for operation in [
        "/paths/~1v1~1jobs/get",
        "/paths/~1v1~1tenants/get",
        "/paths/~1v1~1ws/get",
    ] {
        let parameters = document
            .pointer_mut(&format!("{operation}/parameters"))
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for parameter in parameters.filter(|p| p["in"] == "query") {
            parameter["allowEmptyValue"] = Value::Bool(true);
        }
    }
}

/// `runAt` and `delayMs` both say when a job is due: a job gives one or
/// neither (a null one counts as not given).
fn forbid_run_at_with_delay(document: &mut Value) {
    if let Some(Value::Object(create)) = document.pointer_mut("/components/schemas/CreateJob") {
        create.insert(
            "not".into(),
            json!({
                "required": ["runAt", "delayMs"],
                "properties": {"runAt": {"type": "string"}, "delayMs": {"type": "integer"}},
            }),
        );
    }
}

/// A problem+json response described by `description`.
fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Problem",
                ))))
                .build(),
        )
        .build()
}

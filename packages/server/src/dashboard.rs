//! The live dashboard at `/`: a page and its scripts, compiled into the
//! binary so that `cargo run` and a browser are all a user needs. The page
//! talks to the same public API as any app, through the JavaScript client
//! (`packages/client-js/dist`, served as `/dashboard/client.js`).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP: &str = include_str!("../dashboard/app.js");
const STYLE: &str = include_str!("../dashboard/app.css");
const CLIENT: &str = include_str!("../../client-js/dist/index.js");

/// Only the page's own scripts and styles, and calls to its own origin: a
/// token pasted into the page cannot be sent anywhere else.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX)))
        .route(
            "/dashboard/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP)),
        )
        .route(
            "/dashboard/client.js",
            get(|| asset("text/javascript; charset=utf-8", CLIENT)),
        )
        .route(
            "/dashboard/app.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
}

/// `no-cache`: a browser revalidates, so a new binary's page is never mixed
/// with an old script.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

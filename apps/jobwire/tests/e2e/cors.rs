//! A browser app on another origin: CORS for the origins listed in
//! `JOBWIRE_CORS_ORIGINS`, and the same list guarding the WebSocket upgrade.

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Options, TestApp, spawn_app_with};

const ALLOWED: &str = "http://localhost:3000";
const REFUSED: &str = "http://evil.example";

async fn app() -> TestApp {
    spawn_app_with(Options {
        cors_origins: vec![ALLOWED.into()],
        ..Options::without_worker()
    })
    .await
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_and_a_refused_one_is_not() {
    let app = app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/v1/jobs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight(ALLOWED).await.expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for wanted in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed_headers.contains(wanted), "{allowed_headers}");
    }

    let refused = preflight(REFUSED).await.expect("preflight");
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin"),
        "a refused origin gets no CORS headers"
    );
}

#[tokio::test]
async fn responses_to_an_allowed_origin_carry_cors_headers_and_others_do_not() {
    let app = app().await;
    let get = |origin: &'static str| {
        app.http
            .get(app.url("/v1/jobs"))
            .bearer_auth(app.token("acme"))
            .header("origin", origin)
            .send()
    };
    let allowed = get(ALLOWED).await.expect("GET");
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], ALLOWED);
    let exposed = allowed.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    let body: Value = allowed.json().await.expect("JSON");
    assert!(body["jobs"].is_array());

    let refused = get(REFUSED).await.expect("GET");
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

/// Opens a WebSocket with `origin` (if any); returns the HTTP status of a refusal.
async fn upgrade_with(app: &TestApp, origin: Option<String>) -> Result<(), u16> {
    let mut request = format!("ws://{}/v1/ws?token={}", app.addr, app.token("acme"))
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn the_websocket_upgrade_checks_origin_against_the_same_list() {
    let app = app().await;
    assert_eq!(upgrade_with(&app, Some(ALLOWED.into())).await, Ok(()));
    assert_eq!(upgrade_with(&app, Some(REFUSED.into())).await, Err(403));
    // This server's own pages, and clients that are not browsers, are let through.
    assert_eq!(
        upgrade_with(&app, Some(format!("http://{}", app.addr))).await,
        Ok(())
    );
    assert_eq!(upgrade_with(&app, None).await, Ok(()));

    // With no origin listed, only same-origin pages and non-browsers.
    let closed = spawn_app_with(Options::without_worker()).await;
    assert_eq!(upgrade_with(&closed, Some(ALLOWED.into())).await, Err(403));
    assert_eq!(upgrade_with(&closed, None).await, Ok(()));
}

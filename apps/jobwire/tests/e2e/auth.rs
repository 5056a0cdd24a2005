//! Tokens as clients send them, and the token rules an operator sets.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Options, read, spawn_app_with};

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app_with(Options::without_worker()).await;
    let token = app.token("acme");
    for scheme in ["bearer", "BEARER", "bEaReR", "Bearer"] {
        let response = app
            .http
            .get(app.url("/v1/jobs"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, 200, "`{scheme} <token>`: {body}");

        // The WebSocket takes the same header (RFC 7235: the scheme is case-insensitive).
        let mut request = format!("ws://{}/v1/ws", app.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("{scheme} {token}").parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .unwrap_or_else(|e| panic!("`{scheme} <token>` on /v1/ws: {e}"));
        ws.close(None).await.unwrap();
    }
}

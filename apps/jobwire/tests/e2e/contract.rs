//! The API contract (`/openapi.json`, committed as `docs/openapi.json`).

use serde_json::{Value, json};

use crate::support::{Backend, Options, spawn_app_with};

const COMMITTED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/openapi.json"
));

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = spawn_app_with(Options::without_worker()).await;
    // No token: the contract is public.
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-request-id"));
    let served = response.text().await.unwrap();
    assert!(
        served == COMMITTED,
        "the API contract changed: review the change, then regenerate the committed document \
         with `cargo run -q -- openapi > docs/openapi.json` (it is `jobwire openapi`)"
    );
    let document: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths: Vec<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/v1/jobs",
        "/v1/jobs/batch",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/retry",
        "/v1/stats",
        "/v1/ws",
    ] {
        assert!(paths.contains(&path), "{path} is documented: {paths:?}");
    }
}

/// Every operation answers a request without a token as its document says:
/// 401 where `bearer` is required, and a documented status elsewhere.
#[tokio::test]
async fn every_documented_operation_answers_a_documented_status() {
    let app = spawn_app_with(Options::without_worker()).await;
    let document: Value = serde_json::from_str(COMMITTED).unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let url = app.url(&path.replace("{id}", &id));
            let request = match method.as_str() {
                "get" => app.http.get(&url),
                "post" => app.http.post(&url).json(&json!({"type": "noop"})),
                other => panic!("{path}: a method the test does not know, {other}"),
            };
            let status = request.send().await.unwrap().status().as_u16();
            let documented = &operation["responses"];
            assert!(
                documented.get(status.to_string()).is_some(),
                "{method} {path} answered {status}, not in its responses"
            );
            let needs_token = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().all(|s| s != &json!({})));
            assert_eq!(needs_token, status == 401, "{method} {path}: {status}");
        }
    }
}

/// As the document says (`allowEmptyValue`): an empty query value is the
/// same as none, as an HTML form sends it.
async fn empty_list_filters_are_no_filters(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let id = app.create("acme", json!({"type": "noop"})).await;
    let (status, page) = app
        .get("acme", "/v1/jobs?status=&type=&limit=&cursor=")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["jobs"][0]["id"], id.as_str());
}

/// The document forbids giving both `runAt` and `delayMs` (a null one counts
/// as not given); the server agrees.
async fn run_at_with_delay_ms_is_422_unless_one_is_null(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let at = "2030-01-01T00:00:00Z";
    let (status, _) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "noop", "runAt": at, "delayMs": 5}),
        )
        .await;
    assert_eq!(status, 422);
    for body in [
        json!({"type": "noop", "runAt": at, "delayMs": null}),
        json!({"type": "noop", "runAt": null, "delayMs": 5}),
    ] {
        let (status, created) = app.post("acme", "/v1/jobs", body.clone()).await;
        assert_eq!(status, 201, "{body}: {created}");
    }
}

in_both_modes!(
    empty_list_filters_are_no_filters,
    run_at_with_delay_ms_is_422_unless_one_is_null,
);

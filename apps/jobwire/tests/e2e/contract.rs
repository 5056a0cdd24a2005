//! The API contract (`/openapi.json`, committed as `docs/openapi.json`) and
//! the server bugs its fuzzing (`scripts/fuzz-api.sh`) found, each pinned
//! here so that it stays fixed.

use serde_json::{Value, json};

use crate::support::{Backend, Options, job, spawn_app_with};

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

/// Fuzzing found `{"maxAttempts": 5.0}` refused: JSON Schema counts 5.0 as an
/// integer, and so do clients whose numbers are all floats.
async fn whole_numbers_written_with_a_fraction_are_integers(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let (status, created) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "noop", "maxAttempts": 5.0, "timeoutMs": 1000.0, "delayMs": 0.0}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["maxAttempts"], 5);
    assert_eq!(created["timeoutMs"], 1000);
    for (field, value) in [
        ("maxAttempts", json!(5.5)),
        ("timeoutMs", json!(0.5)),
        ("delayMs", json!(-1.0)),
        ("maxAttempts", json!(1e300)),
    ] {
        let (status, problem) = app
            .post("acme", "/v1/jobs", json!({"type": "noop", field: value}))
            .await;
        assert_eq!(status, 422, "{field}: {value}: {problem}");
    }
}

/// Fuzzing found a payload holding U+0000 answered 500 on Postgres, which
/// cannot store that character, and failing the other creates written in
/// the same statement. Refused with 422 on both engines alike.
async fn a_nul_character_is_refused_with_422_and_spoils_no_other_create(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    for (what, path, body) in [
        (
            "in a payload string",
            "/v1/jobs",
            json!({"type": "noop", "payload": {"a": ["\u{0}"]}}),
        ),
        (
            "in a payload key",
            "/v1/jobs",
            json!({"type": "noop", "payload": {"k\u{0}": 1}}),
        ),
        (
            "in an idempotency key",
            "/v1/jobs",
            json!({"type": "noop", "idempotencyKey": "a\u{0}"}),
        ),
        (
            "in one job of a batch",
            "/v1/jobs/batch",
            json!({"jobs": [{"type": "noop"}, {"type": "noop", "payload": "\u{0}"}]}),
        ),
    ] {
        // Good creates at the same time, coalesced with the bad one where they can be.
        let good = app.post("acme", "/v1/jobs", job("noop", json!({"n": 1})));
        let (bad, good) = tokio::join!(app.post("acme", path, body), good);
        assert_eq!(bad.0, 422, "{what}: {}", bad.1);
        assert!(
            bad.1["detail"].as_str().unwrap().contains("U+0000"),
            "{what}: {}",
            bad.1
        );
        assert_eq!(good.0, 201, "{what}: the good create beside it: {}", good.1);
    }
    assert_eq!(
        app.job_count().await,
        4,
        "only the good creates were written"
    );
}

/// Fuzzing found a payload holding the largest float answered 500 on
/// Postgres: `jsonb` writes it back in full (309 digits), which did not
/// parse. Every float now reads back as it was written.
async fn payload_numbers_read_back_as_they_were_written(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let numbers = json!([
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        1e300,
        0.1,
        123_456_789.123_456_79,
        u64::MAX,
        i64::MIN
    ]);
    let mut ws = app.ws("acme").await;
    let id = app.create("acme", job("echo", numbers.clone())).await;
    let (status, read_back) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{read_back}");
    assert_eq!(read_back["payload"], numbers);
    let done = ws.until_status(&id, "succeeded").await.pop().unwrap();
    assert_eq!(done["result"], numbers, "the worker read the same payload");
}

/// The schema counts `type` and `idempotencyKey` in characters, as their
/// errors always said; the server counted bytes, so 128 `é` (256 bytes) was
/// refused though the document allows it.
async fn lengths_are_counted_in_characters(backend: Backend) {
    let app = spawn_app_with(Options {
        backend,
        ..Options::without_worker()
    })
    .await;
    let body = json!({"type": "é".repeat(128), "idempotencyKey": "ü".repeat(255)});
    let (status, created) = app.post("acme", "/v1/jobs", body).await;
    assert_eq!(status, 201, "{created}");
    let (status, listed) = app
        .get("acme", &format!("/v1/jobs?type={}", "é".repeat(128)))
        .await;
    assert_eq!(
        (status, listed["jobs"][0]["id"].clone()),
        (200, created["id"].clone())
    );
    let (status, _) = app
        .post("acme", "/v1/jobs", json!({"type": "é".repeat(129)}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "noop", "idempotencyKey": "ü".repeat(256)}),
        )
        .await;
    assert_eq!(status, 422);
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
    whole_numbers_written_with_a_fraction_are_integers,
    a_nul_character_is_refused_with_422_and_spoils_no_other_create,
    payload_numbers_read_back_as_they_were_written,
    lengths_are_counted_in_characters,
    empty_list_filters_are_no_filters,
    run_at_with_delay_ms_is_422_unless_one_is_null,
);

//! A tenant never sees another tenant's jobs or updates.

use serde_json::json;

use crate::support::{Backend, Options, job, spawn_app_with};

async fn a_second_tenant_sees_nothing_of_the_first(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut first = app.ws("acme").await;
    let mut second = app.ws("globex").await;

    let secret = app.create("acme", job("noop", json!({}))).await;
    first.until_status(&secret, "succeeded").await;
    // globex's own job: when its updates arrive, any of acme's would have come before.
    let own = app.create("globex", job("noop", json!({}))).await;
    let seen = second.until_status(&own, "succeeded").await;
    assert!(seen.iter().all(|u| u["tenantId"] == "globex"));
    assert_eq!(
        seen.len(),
        3,
        "globex saw only its own job's updates: {seen:?}"
    );

    let (code, body) = app.get("globex", &format!("/v1/jobs/{secret}")).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["status"], 404);
    let (code, _) = app
        .post("globex", &format!("/v1/jobs/{secret}/cancel"), json!({}))
        .await;
    assert_eq!(code, 404);

    let (code, list) = app.get("globex", "/v1/jobs").await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own.as_str()]);
    let (_, list) = app.get("acme", "/v1/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
}

async fn listing_is_newest_first_with_a_cursor_and_filters(backend: Backend) {
    let app = spawn_app_with(Options::on(backend)).await;
    let mut ws = app.ws("acme").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.create("acme", job("noop", json!({}))).await);
    }
    let failed = app.create("acme", job("fail", json!({}))).await;
    ws.until_status(&failed, "failed").await;

    let (_, page1) = app.get("acme", "/v1/jobs?limit=4").await;
    let cursor = page1["nextCursor"].as_str().expect("more pages");
    let (_, page2) = app
        .get("acme", &format!("/v1/jobs?limit=4&cursor={cursor}"))
        .await;
    assert!(page2["nextCursor"].is_null());
    let listed: Vec<&str> = page1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["jobs"].as_array().unwrap())
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let mut newest_first: Vec<&str> = ids.iter().map(String::as_str).collect();
    newest_first.push(&failed);
    newest_first.reverse();
    assert_eq!(listed, newest_first);

    let (_, only_failed) = app.get("acme", "/v1/jobs?status=failed").await;
    assert_eq!(only_failed["jobs"].as_array().unwrap().len(), 1);
    let (_, by_type) = app.get("acme", "/v1/jobs?type=noop&limit=10").await;
    assert_eq!(by_type["jobs"].as_array().unwrap().len(), 5);
}

in_both_modes!(
    a_second_tenant_sees_nothing_of_the_first,
    listing_is_newest_first_with_a_cursor_and_filters,
);

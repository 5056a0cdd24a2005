//! The dashboard's server side: its page and scripts come from the binary,
//! and `/v1/stats` counts what waits. What the page shows is tested in a real
//! browser (packages/client-js/test/dashboard.test.mjs).

use serde_json::json;

use crate::support::{Backend, Options, job, spawn_app_with};

#[tokio::test]
async fn the_page_and_its_scripts_are_served_with_a_strict_content_policy() {
    let app = spawn_app_with(Options::without_worker()).await;
    for (path, content_type, contains) in [
        ("/", "text/html; charset=utf-8", "/dashboard/app.js"),
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "./client.js",
        ),
        (
            "/dashboard/client.js",
            "text/javascript; charset=utf-8",
            "class JobwireClient",
        ),
        ("/dashboard/app.css", "text/css; charset=utf-8", ".chip"),
    ] {
        let response = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(policy.contains("connect-src 'self'"), "{path}: {policy}");
        assert!(response.text().await.unwrap().contains(contains), "{path}");
    }
}

async fn stats_count_each_priority_of_the_tenant_only(backend: Backend) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    for priority in ["high", "high", "low"] {
        app.create("acme", json!({"type": "noop", "priority": priority}))
            .await;
    }
    app.create("acme", json!({"type": "noop", "delayMs": 3_600_000}))
        .await;
    app.create("globex", job("noop", json!({}))).await;

    let (status, stats) = app.get("acme", "/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    let zero = json!({"scheduled": 0, "queued": 0, "running": 0});
    let bucket = |tenant: &str| {
        tenant
            .parse::<jobwire_core::TenantId>()
            .unwrap()
            .bucket_label()
    };
    assert_eq!(
        stats,
        json!({"tenantBucket": bucket("acme"), "queues": {
            "critical": zero,
            "high": {"scheduled": 0, "queued": 2, "running": 0},
            "default": {"scheduled": 1, "queued": 0, "running": 0},
            "low": {"scheduled": 0, "queued": 1, "running": 0},
        }, "types": [
            {"type": "noop", "scheduled": 1, "queued": 3, "running": 0, "workers": 0}
        ]})
    );
    let (status, stats) = app.get("nobody", "/v1/stats").await;
    assert_eq!(status, 200);
    for priority in ["critical", "high", "default", "low"] {
        assert_eq!(stats["queues"][priority], zero, "{stats}");
    }
    assert_eq!(stats["types"], json!([]));
    assert_eq!(stats["tenantBucket"], bucket("nobody"));
}

in_both_modes!(stats_count_each_priority_of_the_tenant_only);

#[tokio::test]
async fn stats_need_a_token() {
    let app = spawn_app_with(Options::without_worker()).await;
    let response = reqwest::get(app.url("/v1/stats")).await.unwrap();
    assert_eq!(response.status(), 401);
}

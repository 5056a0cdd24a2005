//! The operators' view, `GET /v1/tenants`, with an operator token: every
//! tenant's scheduled, queued and running jobs and its bucket; and the roles
//! kept apart (a tenant's token is refused there, an operator's token on
//! every tenant's route).

use serde_json::{Value, json};

use crate::support::{Backend, Options, TestApp, job, spawn_app_with};

/// Leases `n` jobs of `tenant`'s type `hold` as a remote worker would, so
/// that they are `running` (and stay so: nobody reports on them).
async fn hold_running(app: &TestApp, tenant: &str, n: usize) {
    let worker = app.worker_token("holder", &[tenant], &["hold"]);
    let (status, leased) = app
        .post_with(
            &worker,
            "/v1/worker/lease",
            json!({"max": n, "waitMs": 5000, "leaseMs": 600_000}),
        )
        .await;
    assert_eq!(status, 200, "{leased}");
    assert_eq!(leased.as_array().unwrap().len(), n, "{leased}");
}

/// Creates `n` jobs of `job_type` for `tenant`, in one batch.
async fn create_many(app: &TestApp, tenant: &str, job_type: &str, n: usize) {
    let jobs: Vec<Value> = (0..n).map(|i| job(job_type, json!({"n": i}))).collect();
    let (status, body) = app
        .post(tenant, "/v1/jobs/batch", json!({"jobs": jobs}))
        .await;
    assert_eq!(status, 201, "{body}");
}

fn bucket(tenant: &str) -> String {
    tenant
        .parse::<jobwire_core::TenantId>()
        .unwrap()
        .bucket_label()
        .to_owned()
}

/// The rows of a `/v1/tenants` answer as (tenant, scheduled, queued, running).
fn rows(list: &Value) -> Vec<(String, i64, i64, i64)> {
    list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let tenant = row["tenantId"].as_str().unwrap().to_owned();
            assert_eq!(row["tenantBucket"], bucket(&tenant), "{row}");
            let count = |field: &str| row[field].as_i64().unwrap();
            (
                tenant,
                count("scheduled"),
                count("queued"),
                count("running"),
            )
        })
        .collect()
}

async fn the_operator_view_lists_each_tenants_unfinished_jobs_most_queued_first(backend: Backend) {
    // No built-in worker: jobs stay queued unless the test leases them.
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    // acme: 4 queued, 1 scheduled. globex: 2 queued, 2 running. initech: 6
    // queued, 1 running. umbrella: one cancelled job only, so not listed.
    create_many(&app, "acme", "wait", 4).await;
    let (status, _) = app
        .post(
            "acme",
            "/v1/jobs",
            json!({"type": "wait", "delayMs": 3_600_000}),
        )
        .await;
    assert_eq!(status, 201);
    create_many(&app, "globex", "hold", 2).await;
    hold_running(&app, "globex", 2).await;
    create_many(&app, "globex", "wait", 2).await;
    create_many(&app, "initech", "hold", 1).await;
    hold_running(&app, "initech", 1).await;
    create_many(&app, "initech", "wait", 6).await;
    let cancelled = app.create("umbrella", job("wait", json!({}))).await;
    let (status, _) = app
        .post(
            "umbrella",
            &format!("/v1/jobs/{cancelled}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);

    let operator = app.operator_token();
    let (status, list) = app.get_with(&operator, "/v1/tenants").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        rows(&list),
        [
            ("initech".to_owned(), 0, 6, 1),
            ("acme".to_owned(), 1, 4, 0),
            ("globex".to_owned(), 0, 2, 2),
        ],
        "every tenant with unfinished jobs, most queued first: {list}"
    );
    assert_eq!(list["total"], 3);

    let (status, first) = app.get_with(&operator, "/v1/tenants?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(rows(&first), rows(&list)[..2], "the limit bounds the list");
    assert_eq!(first["total"], 3, "the total counts those left out");
    let (status, _) = app.get_with(&operator, "/v1/tenants?limit=").await;
    assert_eq!(status, 200, "an empty limit is the default");
    for bad in ["0", "1001", "ten", "-1"] {
        let (status, problem) = app
            .get_with(&operator, &format!("/v1/tenants?limit={bad}"))
            .await;
        assert_eq!(status, 422, "limit={bad}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("limit"));
    }

    // A tenant sees its own bucket in its stats, the one the operator sees.
    let (status, stats) = app.get("globex", "/v1/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["tenantBucket"], bucket("globex"));
    assert_eq!(stats["queues"]["default"]["running"], 2);
}

async fn the_operator_view_refuses_tenant_tokens_and_operator_tokens_reach_no_tenant(
    backend: Backend,
) {
    let app = spawn_app_with(Options {
        worker: false,
        ..Options::on(backend)
    })
    .await;
    let id = app.create("acme", job("wait", json!({}))).await;

    for (who, token) in [
        ("a tenant", app.token("acme")),
        ("a worker", app.worker_token("w", &[], &[])),
    ] {
        let response = app
            .http
            .get(app.url("/v1/tenants"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{who}'s token");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{who}"
        );
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("operator token"),
            "{who}: {problem}"
        );
    }
    let (status, _) = app.get_with("not-a-token", "/v1/tenants").await;
    assert_eq!(status, 401);

    // An operator's token sees every tenant's counts and no tenant's jobs.
    let operator = app.operator_token();
    for path in [
        "/v1/jobs".to_owned(),
        format!("/v1/jobs/{id}"),
        "/v1/stats".to_owned(),
    ] {
        let (status, problem) = app.get_with(&operator, &path).await;
        assert_eq!(status, 403, "GET {path}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("operator token"),
            "{problem}"
        );
    }
    for (path, body) in [
        ("/v1/jobs".to_owned(), job("wait", json!({}))),
        (format!("/v1/jobs/{id}/cancel"), json!({})),
        ("/v1/worker/lease".to_owned(), json!({"waitMs": 0})),
    ] {
        let (status, problem) = app.post_with(&operator, &path, body).await;
        assert_eq!(status, 403, "POST {path}: {problem}");
    }
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/ws?token={operator}", app.addr))
            .await
            .expect_err("the upgrade is refused");
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("not an HTTP refusal: {other}"),
    }
    let (_, job) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        job["status"], "queued",
        "nothing the operator sent touched it"
    );
}

in_both_modes!(
    the_operator_view_lists_each_tenants_unfinished_jobs_most_queued_first,
    the_operator_view_refuses_tenant_tokens_and_operator_tokens_reach_no_tenant,
);

/// `jobwire token --operator` makes the token the operators' view takes,
/// and `--name` without a role is a bad command line.
#[tokio::test]
async fn jobwire_token_operator_makes_a_token_for_the_operator_view() {
    let app = spawn_app_with(Options::without_worker()).await;
    app.create("acme", job("wait", json!({}))).await;
    let token = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_jobwire"))
            .env_clear()
            .env("JOBWIRE_JWT_SECRET", crate::support::SECRET)
            .arg("token")
            .args(args)
            .output()
            .unwrap()
    };
    let output = token(&["--operator", "--name", "alice", "--ttl", "10m"]);
    assert!(output.status.success(), "{output:?}");
    let operator = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let (status, list) = app.get_with(&operator, "/v1/tenants").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tenants"][0]["tenantId"], "acme");
    assert_eq!(list["tenants"][0]["queued"], 1);

    for args in [
        &["--name", "alice", "--tenant", "acme"][..],
        &["--operator", "--tenant", "acme"],
        &["--operator", "--worker"],
    ] {
        let output = token(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
}

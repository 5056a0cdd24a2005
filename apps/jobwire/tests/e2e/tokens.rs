//! A backend in another language mints tokens for its users: the README's
//! Python example (examples/tokens/mint_token.py) makes one the API takes.

use crate::support::{Options, SECRET, read, spawn_app_with};

#[tokio::test]
async fn a_token_minted_by_the_python_example_is_accepted_for_its_tenant_only() {
    let app = spawn_app_with(Options::without_worker()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/tokens/mint_token.py"
    );
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg("acme")
        .arg("600")
        .env("JOBWIRE_JWT_SECRET", SECRET)
        .output()
        .await
        .expect("python3 runs");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("UTF-8");
    let created = app
        .http
        .post(app.url("/v1/jobs"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({"type": "noop"}))
        .send()
        .await
        .expect("POST");
    let (status, job) = read(created).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["tenantId"], "acme");
    let id = job["id"].as_str().expect("id");
    let (status, _) = app.get("globex", &format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 404, "another tenant does not see it");
}

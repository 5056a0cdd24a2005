//! Tokens as clients send them, and the token rules an operator sets.

use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use jobwire_server::Claims;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::processes::start_api_with;
use crate::support::{Options, SECRET, WAIT, read, spawn_app_with};

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

/// Environment variables of a process.
type Env<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn a_jwt_secret_under_32_bytes_is_refused_at_startup_saying_why() {
    let short = "0123456789abcdef0123456789abcde"; // 31 bytes
    // Engines that hold nothing (nothing listens on port 1): whatever the
    // binary does, it touches no one's data.
    let nowhere: Env = &[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ];
    let in_memory: Env = &[("JOBWIRE_DB_FILE", ":memory:")];
    let cases: [(&str, &[&str], Env); 3] = [
        (env!("CARGO_BIN_EXE_jobwire-api"), &[], nowhere),
        (env!("CARGO_BIN_EXE_jobwire"), &[], in_memory),
        (
            env!("CARGO_BIN_EXE_jobwire"),
            &["token", "--tenant", "acme"],
            &[],
        ),
    ];
    for (binary, args, env) in cases {
        let output = Command::new(binary)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .env("JOBWIRE_JWT_SECRET", short)
            .env("JOBWIRE_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // One that started anyway would serve until killed: bound the wait.
        let output = tokio::time::timeout(WAIT, output.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{binary} {args:?} started with a 31-byte secret"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{binary} {args:?} refused");
        assert!(
            stderr.contains("JOBWIRE_JWT_SECRET")
                && stderr.contains("32 bytes")
                && stderr.contains("256 bits"),
            "{binary} {args:?} says why: {stderr}"
        );
        assert!(!stderr.contains(short), "{binary} {args:?}: {stderr}");
    }
    // 32 bytes are enough.
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--tenant", "acme"])
        .env_clear()
        .env("JOBWIRE_JWT_SECRET", format!("{short}f"))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `jobwire token args…` with the test secret and the settings `env`.
async fn jobwire_token(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .arg("token")
        .args(args)
        .env_clear()
        .env("JOBWIRE_JWT_SECRET", SECRET)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

/// The status of `GET /v1/jobs` on the API at `addr` with `token`.
async fn status_with(addr: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{addr}/v1/jobs"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of acme's token with the given standard claims.
fn claims(iat: Option<u64>, exp: u64, aud: Option<&str>, iss: Option<&str>) -> Claims {
    Claims {
        tenant: "acme".parse().unwrap(),
        exp,
        iat,
        aud: aud.map(str::to_owned),
        iss: iss.map(str::to_owned),
    }
}

#[tokio::test]
async fn audience_and_issuer_when_set_are_required_and_jobwire_token_puts_them_in() {
    let app = spawn_app_with(Options::without_worker()).await;
    let rules = [
        ("JOBWIRE_JWT_AUDIENCE", "jobwire-test"),
        ("JOBWIRE_JWT_ISSUER", "acme-backend"),
    ];
    let (_api, addr) = start_api_with(&app, &rules).await;

    let output = jobwire_token(&["--tenant", "acme"], &rules).await;
    assert!(output.status.success());
    let issued = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(status_with(&addr, &issued).await, 200, "jobwire token's");

    let exp = now() + 600;
    let cases = [
        ("neither aud nor iss", app.token("acme"), 401),
        (
            "no aud",
            app.keys
                .sign(&claims(None, exp, None, Some("acme-backend"))),
            401,
        ),
        (
            "no iss",
            app.keys
                .sign(&claims(None, exp, Some("jobwire-test"), None)),
            401,
        ),
        (
            "another aud",
            app.keys
                .sign(&claims(None, exp, Some("billing"), Some("acme-backend"))),
            401,
        ),
        (
            "another iss",
            app.keys
                .sign(&claims(None, exp, Some("jobwire-test"), Some("mallory"))),
            401,
        ),
        (
            "both right",
            app.keys.sign(&claims(
                None,
                exp,
                Some("jobwire-test"),
                Some("acme-backend"),
            )),
            200,
        ),
    ];
    for (what, token, expected) in cases {
        assert_eq!(status_with(&addr, &token).await, expected, "{what}");
    }
}

#[tokio::test]
async fn tokens_living_longer_than_the_maximum_ttl_are_refused() {
    let app = spawn_app_with(Options::without_worker()).await;
    let rules = [("JOBWIRE_JWT_MAX_TTL", "1h")];
    let (_api, addr) = start_api_with(&app, &rules).await;

    let output = jobwire_token(&["--tenant", "acme", "--ttl", "1h"], &rules).await;
    assert!(output.status.success());
    let issued = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(status_with(&addr, &issued).await, 200, "jobwire token's");

    let refused = jobwire_token(&["--tenant", "acme", "--ttl", "2h"], &rules).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "--ttl 2h over a 1h maximum");
    assert!(stderr.contains("JOBWIRE_JWT_MAX_TTL"), "{stderr}");
    assert!(refused.stdout.is_empty(), "no token printed");

    let now = now();
    let cases = [
        (
            "2 h from iat",
            claims(Some(now), now + 7200, None, None),
            401,
        ),
        ("no iat", claims(None, now + 1800, None, None), 401),
        (
            "issued tomorrow",
            claims(Some(now + 86_400), now + 86_400 + 1800, None, None),
            401,
        ),
        (
            "40 min from iat, 10 of them gone",
            claims(Some(now - 600), now + 1800, None, None),
            200,
        ),
    ];
    for (what, claims, expected) in cases {
        let token = app.keys.sign(&claims);
        assert_eq!(status_with(&addr, &token).await, expected, "{what}");
    }
}

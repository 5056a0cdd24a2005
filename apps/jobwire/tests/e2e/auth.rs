//! Tokens as clients send them, and the token rules an operator sets.

use std::process::Stdio;

use tokio::process::Command;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Options, WAIT, read, spawn_app_with};

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

//! With the `otlp` feature (`cargo test -p jobwire --features otlp --test
//! e2e otlp`): the API's request spans and the worker's attempt spans reach
//! an OTLP/HTTP collector, here a socket of the test's that keeps what it is
//! sent.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::processes::{command, start_api_with};
use crate::support::{Options, Proc, SpawnProc, WAIT, job, spawn_app_with};

/// A collector on port 0: answers every request 200 and hands on its body.
async fn collector() -> (String, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (bodies, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                // Requests one after another on the connection, until it closes.
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    let _ = bodies.send(body);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if socket.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, received)
}

/// Stops a process as an orchestrator does, so that it flushes its spans.
async fn terminate(mut process: Proc) {
    kill(Pid::from_raw(process.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, process.wait()).await.unwrap();
    assert!(status.unwrap().success());
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn request_and_attempt_spans_reach_the_otlp_collector() {
    let app = spawn_app_with(Options::without_worker()).await;
    let (endpoint, mut received) = collector().await;
    let env = [("JOBWIRE_OTLP_ENDPOINT", endpoint.as_str())];
    let (api, addr) = start_api_with(&app, &env).await;
    let worker = command(env!("CARGO_BIN_EXE_jobwire-worker"), &app)
        .envs(env)
        .spawn_proc();
    let mut ws = app.ws("acme").await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/jobs"))
        .bearer_auth(app.token("acme"))
        .header("x-request-id", "otlp-test-7")
        .json(&job("echo", json!({"traced": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ws.until_status(&id, "succeeded").await;
    // Spans go in batches; the rest on shutdown.
    terminate(api).await;
    terminate(worker).await;

    let mut sent = Vec::new();
    let wanted = [
        "jobwire-api",
        "jobwire-worker",
        "request",
        "otlp-test-7",
        "attempt",
        id.as_str(),
    ];
    let all_there = tokio::time::timeout(Duration::from_secs(5), async {
        while !wanted.iter().all(|w| contains(&sent, w)) {
            match received.recv().await {
                Some(body) => sent.extend(body),
                None => return,
            }
        }
    })
    .await;
    let missing: Vec<_> = wanted.iter().filter(|w| !contains(&sent, w)).collect();
    assert!(
        all_there.is_ok() && missing.is_empty(),
        "the collector never got {missing:?} ({} bytes)",
        sent.len()
    );
}

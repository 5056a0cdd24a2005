//! The subcommands for people at a terminal (`submit`, `watch`, `tail`,
//! `jobs`, `token`), run as the real `jobwire` binary against a real server.

use std::process::{Output, Stdio};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::support::{Proc, SpawnProc, TestApp, WAIT, job, spawn_app};

/// `jobwire args…` as acme, against `app`, in an empty environment; stdout
/// piped, so plain lines and no progress bar.
fn jobwire(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jobwire"));
    command
        .args(args)
        .env_clear()
        .env("JOBWIRE_URL", format!("http://{}", app.addr))
        .env("JOBWIRE_TOKEN", app.token("acme"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `command` to its end (within [`WAIT`]).
async fn run(mut command: Command) -> Output {
    tokio::time::timeout(WAIT, command.output())
        .await
        .expect("the command ends in time")
        .expect("jobwire runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads lines of `stdout` until one satisfies `wanted` (within [`WAIT`]); all lines read.
async fn until_line(
    stdout: &mut Lines<BufReader<ChildStdout>>,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = tokio::time::timeout(WAIT, stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("no such line in time; read so far:\n{lines:#?}"))
            .expect("stdout readable")
            .unwrap_or_else(|| panic!("stdout ended; read:\n{lines:#?}"));
        let found = wanted(&line);
        lines.push(line);
        if found {
            return lines;
        }
    }
}

#[tokio::test]
async fn submit_wait_of_a_noop_job_exits_0_and_prints_its_id() {
    let app = spawn_app().await;
    let output = run(jobwire(&app, &["submit", "--type", "noop", "--wait"])).await;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{}",
        output.status,
        text(&output.stderr)
    );

    let id = stdout.lines().next().expect("the ID first");
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "the first line is the job's ID: {stdout}"
    );
    assert_eq!(app.row(id).await.0, "succeeded");
    let last = stdout.lines().last().expect("an update");
    assert!(
        last.starts_with(id) && last.contains(" succeeded "),
        "the last line is the job's end: {stdout}"
    );
}

#[tokio::test]
async fn submit_wait_of_a_failing_job_exits_3_with_its_error() {
    let app = spawn_app().await;
    let output = run(jobwire(
        &app,
        &[
            "submit",
            "--type",
            "fail",
            "--payload",
            r#"{"message":"x"}"#,
            "--max-attempts",
            "1",
            "--wait",
        ],
    ))
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "failed is exit code 3:\n{stdout}"
    );
    let id = stdout.lines().next().expect("the ID first");
    let (status, _, attempt) = app.row(id).await;
    assert_eq!(
        (status.as_str(), attempt),
        ("failed", 1),
        "one attempt only"
    );
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|line| line.contains(" failed ") && line.contains("error: x")),
        "the last line says failed and why: {stdout}"
    );
}

#[tokio::test]
async fn submit_json_prints_the_created_job_and_a_payload_file_is_read() {
    let app = spawn_app().await;
    let file = std::env::temp_dir().join(format!("jobwire-payload-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, r#"{"hello":"file"}"#).unwrap();
    let payload = format!("@{}", file.display());
    let output = run(jobwire(
        &app,
        &[
            "submit",
            "--type",
            "echo",
            "--payload",
            &payload,
            "--priority",
            "high",
            "--json",
        ],
    ))
    .await;
    std::fs::remove_file(&file).unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(created["payload"], json!({"hello": "file"}));
    assert_eq!(created["priority"], "high");
}

#[tokio::test]
async fn bad_input_and_http_errors_print_the_detail_and_exit_1() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let mut bad_token = jobwire(&app, &["jobs"]);
    bad_token.env("JOBWIRE_TOKEN", "not-a-token");
    let cases: [(Command, &str); 4] = [
        (
            jobwire(&app, &["submit", "--type", "noop", "--payload", "{oops"]),
            "--payload is not JSON",
        ),
        (jobwire(&app, &["submit", "--type", ""]), "422"),
        (jobwire(&app, &["watch", &unknown]), "404"),
        (bad_token, "401"),
    ];
    for (command, expected) in cases {
        let args: Vec<String> = command
            .as_std()
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let output = run(command).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn watch_follows_an_existing_job_to_its_end() {
    let app = spawn_app().await;
    let id = app.create("acme", job("sleep", json!({"ms": 300}))).await;
    let output = run(jobwire(&app, &["watch", &id])).await;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{}",
        output.status,
        text(&output.stderr)
    );
    let statuses: Vec<&str> = stdout
        .lines()
        .map(|line| {
            assert!(
                line.starts_with(&id),
                "one line per update of the job: {line}"
            );
            line.split(' ').nth(1).expect("a status")
        })
        .collect();
    assert_eq!(statuses.last(), Some(&"succeeded"), "{stdout}");
    assert!(
        stdout.contains(r#"progress {"percent":50}"#),
        "the handler's progress is shown: {stdout}"
    );

    // A job that has ended already: its end, at once.
    let output = run(jobwire(&app, &["watch", &id])).await;
    assert!(output.status.success());
    assert!(text(&output.stdout).contains(" succeeded "));
}

#[tokio::test]
async fn tail_json_prints_updates_of_a_job_created_while_it_runs() {
    let app = spawn_app().await;
    let mut tail: Proc = jobwire(&app, &["tail", "--json"]).spawn_proc();
    let mut stdout = BufReader::new(tail.stdout.take().expect("piped stdout")).lines();
    // Nothing is missed once the session is connected.
    until_line(&mut stdout, |line| line.contains(r#""event":"connected""#)).await;

    let id = app.create("acme", job("noop", json!({}))).await;
    let lines = until_line(&mut stdout, |line| {
        line.contains(&id) && line.contains(r#""status":"succeeded""#)
    })
    .await;
    for line in &lines {
        let frame: serde_json::Value = serde_json::from_str(line).expect("raw JSON frames");
        assert_eq!(frame["jobId"], id.as_str(), "{line}");
    }
    assert!(
        tail.try_wait().unwrap().is_none(),
        "tail runs until interrupted"
    );
}

#[tokio::test]
async fn jobs_prints_a_table_containing_a_created_jobs_id() {
    let app = spawn_app().await;
    let echo = app.create("acme", job("echo", json!({"a": 1}))).await;
    let noop = app.create("acme", job("noop", json!({}))).await;
    let output = run(jobwire(&app, &["jobs", "--type", "echo", "--limit", "10"])).await;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "TYPE", "STATUS", "ATTEMPT", "CREATED", "(UTC)"]
    );
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(row[..2], [echo.as_str(), "echo"], "{stdout}");
    assert!(!stdout.contains(&noop), "--type filters: {stdout}");
}

/// A fresh directory under the system's temporary one.
fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jobwire-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn token_without_jwt_secret_reads_the_secret_file_of_the_embedded_db() {
    let dir = temp_dir();
    let db_file = dir.join("jobwire.db");
    // As the embedded mode leaves it: <db file>.secret, two simple UUIDs.
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(dir.join("jobwire.db.secret"), &secret).unwrap();

    for args in [
        vec!["--db-file", db_file.to_str().unwrap()],
        vec!["--database-url", &format!("sqlite:{}", db_file.display())],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
            .args(["token", "--tenant", "acme"])
            .args(&args)
            .env_clear()
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        let token = text(&output.stdout);
        let keys = jobwire_server::JwtKeys::new(secret.as_bytes()).unwrap();
        let tenant = keys
            .verify(token.trim())
            .expect("signed with the file's secret");
        assert_eq!(tenant.to_string(), "acme");
    }

    // The same with JOBWIRE_DB_FILE, as the all-in-one reads it.
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--tenant", "acme"])
        .env_clear()
        .env("JOBWIRE_DB_FILE", &db_file)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn token_with_no_secret_anywhere_says_what_to_set() {
    let dir = temp_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_jobwire"))
        .args(["token", "--tenant", "acme"])
        .env_clear()
        .env("JOBWIRE_DB_FILE", dir.join("jobwire.db"))
        .output()
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("JOBWIRE_JWT_SECRET") && stderr.contains("jobwire.db.secret"),
        "says what to set and where it looked: {stderr}"
    );
    assert!(
        !dir.join("jobwire.db.secret").exists(),
        "no secret is made up: the server would refuse its tokens"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! What the binaries tell the person who runs them: `--help`, the startup
//! banner, the refusals at startup, and what they never show (passwords).

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

use crate::processes::command;
use crate::support::{
    Options, PrivateRedis, Proc, SpawnProc, WAIT, read, spawn_app_with, wait_ready,
};

/// Reads `child`'s stdout up to and including the banner line starting with `last`
/// (after trimming); returns the banner, the API's address and the rest of stdout.
async fn banner(child: &mut Proc, last: &str) -> (String, String, Lines<BufReader<ChildStdout>>) {
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut banner = String::new();
    loop {
        let line = tokio::time::timeout(WAIT, stdout.next_line())
            .await
            .expect("the startup banner in time")
            .expect("stdout readable")
            .unwrap_or_else(|| panic!("the process exited after printing:\n{banner}"));
        banner.push_str(&line);
        banner.push('\n');
        if line.trim_start().starts_with(last) {
            break;
        }
    }
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the banner names the URL")
        .to_owned();
    (banner, addr, stdout)
}

#[tokio::test]
async fn the_redis_password_shows_neither_in_the_banner_nor_in_readyz() {
    const PASSWORD: &str = "hunter2-redis-password";
    // The app owns the test's database; the all-in-one uses it and a Redis with a password.
    let app = spawn_app_with(Options::without_worker()).await;
    let mut redis = PrivateRedis::start_with_password(PASSWORD).await;
    let mut jobwire = command(env!("CARGO_BIN_EXE_jobwire"), &app)
        .env("REDIS_URL", &redis.url)
        .stderr(Stdio::null())
        .spawn_proc();
    let (banner, addr, _stdout) = banner(&mut jobwire, "broker:").await;
    let http = reqwest::Client::new();
    let readyz = format!("http://{addr}/readyz");
    wait_ready(&http, &readyz).await;

    // With Redis down, the unauthenticated readiness check names the broker.
    redis.stop();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let (status, problem) = tokio::time::timeout(WAIT, async {
        loop {
            tick.tick().await;
            let answer = read(http.get(&readyz).send().await.unwrap()).await;
            if answer.0 == 503 {
                return answer;
            }
        }
    })
    .await
    .expect("/readyz answers 503 once Redis is gone");
    let detail = problem["detail"].as_str().unwrap_or_default().to_owned();

    assert!(
        !banner.contains(PASSWORD) && !detail.contains(PASSWORD),
        "the password leaked:\nbanner:\n{banner}\n/readyz {status}: {detail}"
    );
    assert!(
        banner.contains("broker: Redis redis://:***@127.0.0.1:"),
        "the banner still names the Redis, password redacted:\n{banner}"
    );
    assert!(
        detail.contains("the broker (Redis redis://:***@127.0.0.1:"),
        "/readyz names the Redis, password redacted: {detail}"
    );
}

#[tokio::test]
async fn the_all_in_one_on_postgres_and_redis_names_its_channel_and_prints_no_dev_token() {
    let app = spawn_app_with(Options::without_worker()).await;
    let mut jobwire = command(env!("CARGO_BIN_EXE_jobwire"), &app).spawn_proc();
    let (banner, addr, mut rest) = banner(&mut jobwire, "broker:").await;
    // Ready means the banner is all written: it is printed before serving starts.
    wait_ready(&reqwest::Client::new(), &format!("http://{addr}/readyz")).await;
    kill(
        Pid::from_raw(jobwire.id().expect("running") as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let mut stdout = banner.clone();
    while let Some(line) = tokio::time::timeout(WAIT, rest.next_line())
        .await
        .expect("stdout ends when jobwire exits")
        .unwrap()
    {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = jobwire.wait().await.unwrap();
    assert!(status.success(), "{status}");

    let channel = format!("{}job_updates", app.prefix);
    assert!(
        banner.contains(&format!("channel {channel}")),
        "the banner names the channel to SUBSCRIBE to:\n{banner}"
    );
    assert!(
        !stdout.contains("token"),
        "no dev token against Postgres and Redis (a production setup):\n{stdout}"
    );
}

#[tokio::test]
async fn a_database_url_of_another_engine_is_refused_naming_the_supported_schemes() {
    let url = "mysql://root:hunter2@127.0.0.1:3306/jobwire";
    let cases: [(&str, &[&str]); 4] = [
        (env!("CARGO_BIN_EXE_jobwire-api"), &[]),
        (env!("CARGO_BIN_EXE_jobwire-worker"), &[]),
        (env!("CARGO_BIN_EXE_jobwire"), &[]),
        (env!("CARGO_BIN_EXE_jobwire"), &["migrate"]),
    ];
    for (binary, args) in cases {
        let output = tokio::process::Command::new(binary)
            .args(args)
            .env_clear()
            .env("DATABASE_URL", url)
            .env("REDIS_URL", "redis://127.0.0.1:6379")
            .env("JOBWIRE_JWT_SECRET", crate::support::SECRET)
            .env("JOBWIRE_ADDR", "127.0.0.1:0")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{binary} {args:?} refused");
        assert!(
            stderr.contains("unsupported scheme `mysql`")
                && stderr.contains("postgres://")
                && stderr.contains("sqlite:"),
            "{binary} {args:?} names the scheme and the supported ones: {stderr}"
        );
        assert!(
            !stderr.contains("cannot reach") && !stderr.contains("hunter2"),
            "{binary} {args:?}: {stderr}"
        );
    }
}

/// `--help` of `binary args…`, in an empty environment (so that no value shows).
async fn help(binary: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(binary)
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{binary} {args:?} --help");
    String::from_utf8(output.stdout).unwrap()
}

/// Every `--help` a user can ask for: each binary and each subcommand.
const HELPS: [(&str, &[&str]); 9] = [
    (env!("CARGO_BIN_EXE_jobwire"), &[]),
    (env!("CARGO_BIN_EXE_jobwire"), &["token"]),
    (env!("CARGO_BIN_EXE_jobwire"), &["submit"]),
    (env!("CARGO_BIN_EXE_jobwire"), &["watch"]),
    (env!("CARGO_BIN_EXE_jobwire"), &["tail"]),
    (env!("CARGO_BIN_EXE_jobwire"), &["jobs"]),
    (env!("CARGO_BIN_EXE_jobwire"), &["migrate"]),
    (env!("CARGO_BIN_EXE_jobwire-api"), &[]),
    (env!("CARGO_BIN_EXE_jobwire-worker"), &[]),
];

/// `(long flag, environment variable)` of each option in a `--help` text.
fn options(help: &str) -> Vec<(String, Option<String>)> {
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        if line.trim_start().starts_with('-') {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
        .iter()
        .map(|block| {
            let flag = block
                .split("--")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .expect("an option has a long flag")
                .to_owned();
            let env = block.split("[env: ").nth(1).map(|rest| {
                rest.split(['=', ']'])
                    .next()
                    .expect("a variable name")
                    .to_owned()
            });
            (flag, env)
        })
        .collect()
}

#[tokio::test]
async fn every_setting_is_a_flag_named_after_its_environment_variable() {
    for (binary, args) in HELPS {
        let help = help(binary, args).await;
        for (flag, env) in options(&help) {
            // Not settings: what each call of `jobwire token`, `submit`, `watch`,
            // `tail` and `jobs` is asked for, and clap's own.
            let per_call = [
                "tenant",
                "ttl",
                "worker",
                "operator",
                "name",
                "type",
                "payload",
                "priority",
                "max-attempts",
                "wait",
                "json",
                "status",
                "limit",
                "cursor",
            ];
            if ["help", "version"].contains(&flag.as_str()) || per_call.contains(&flag.as_str()) {
                continue;
            }
            let env = env.unwrap_or_else(|| panic!("{binary} {args:?}: --{flag} has no env var"));
            let expected = env
                .strip_prefix("JOBWIRE_")
                .unwrap_or(&env)
                .to_lowercase()
                .replace('_', "-");
            assert_eq!(
                flag, expected,
                "{binary} {args:?}: --{flag} is set by {env}: the names must match"
            );
        }
    }
}

#[tokio::test]
async fn help_offers_no_setting_a_binary_refuses_or_ignores() {
    for binary in [
        env!("CARGO_BIN_EXE_jobwire-api"),
        env!("CARGO_BIN_EXE_jobwire-worker"),
    ] {
        let help = help(binary, &[]).await;
        assert!(
            !help.contains("--db-file") && !help.contains("JOBWIRE_DB_FILE"),
            "{binary} refuses SQLite, yet its --help offers --db-file:\n{help}"
        );
    }
    let migrate = help(env!("CARGO_BIN_EXE_jobwire"), &["migrate"]).await;
    for unused in ["--redis-url", "REDIS_URL", "--prefix", "JOBWIRE_PREFIX"] {
        assert!(
            !migrate.contains(unused),
            "`jobwire migrate` only needs the database, yet offers {unused}:\n{migrate}"
        );
    }
    for used in ["DATABASE_URL", "JOBWIRE_DB_FILE"] {
        assert!(migrate.contains(used), "{used}:\n{migrate}");
    }
}

#[tokio::test]
async fn the_test_hooks_are_hidden_from_help_and_still_accepted() {
    for (binary, args) in HELPS {
        let help = help(binary, args).await.to_lowercase();
        assert!(
            !help.contains("failpoint") && !help.contains("trace"),
            "{binary} {args:?} shows a test hook:\n{help}"
        );
    }
    // Hidden, not removed: each binary still parses its hooks (an unknown
    // flag before --help would be an error).
    let hooks: [(&str, &[&str]); 3] = [
        (
            env!("CARGO_BIN_EXE_jobwire"),
            &["--failpoint", "exit-after-commit", "--trace-dir", "/tmp"],
        ),
        (
            env!("CARGO_BIN_EXE_jobwire-api"),
            &["--failpoint", "exit-after-commit"],
        ),
        (
            env!("CARGO_BIN_EXE_jobwire-worker"),
            &["--trace-dir", "/tmp"],
        ),
    ];
    for (binary, args) in hooks {
        help(binary, args).await;
    }
}

#[tokio::test]
async fn jobwire_api_help_says_the_jwt_secret_is_required() {
    let help = help(env!("CARGO_BIN_EXE_jobwire-api"), &[]).await;
    let secret = help
        .split("--jwt-secret")
        .nth(1)
        .and_then(|rest| rest.split("\n      -").next())
        .expect("--jwt-secret is listed");
    assert!(
        secret.to_lowercase().contains("required"),
        "jobwire-api refuses to start without it, so its help must say so:{secret}"
    );
}

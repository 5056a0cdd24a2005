//! Following one job over the WebSocket until it ends: a progress bar on a
//! terminal, a line per update otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use super::{Session, exit_code, field};

/// How the updates are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A line per update (and a progress bar when stdout is a terminal).
    Lines,
    /// Each update's raw JSON frame, one per line.
    Json,
}

impl Output {
    /// The output a command's `--json` flag asks for.
    pub fn json_if(json: bool) -> Self {
        if json { Self::Json } else { Self::Lines }
    }
}

/// Subscribes `session` to job `id` and shows its updates until it ends; the
/// exit code says how it ended (see [`exit_code`]).
pub async fn follow(session: &mut Session, id: &str, output: Output) -> anyhow::Result<ExitCode> {
    // Answered by `subscribed`, then the job's current state, then its updates.
    session
        .send(&json!({"type": "subscribe", "jobIds": [id]}))
        .await?;
    let bar = (output == Output::Lines && std::io::stdout().is_terminal()).then(progress_bar);
    let mut last_version = i64::MIN;
    loop {
        let (frame, text) = session.next().await?;
        if frame["event"] == "error" {
            anyhow::bail!(
                "the server refused the subscription: {}",
                field(&frame, "detail")
            );
        }
        if frame.get("event").is_some() || frame["jobId"] != id {
            continue;
        }
        // Updates may come twice or late: the highest version is the truth.
        let version = frame["version"].as_i64().unwrap_or(i64::MAX);
        if version <= last_version {
            continue;
        }
        last_version = version;
        let status = field(&frame, "status");
        match (&bar, output) {
            (_, Output::Json) => println!("{text}"),
            (Some(bar), Output::Lines) => {
                bar.println(line(&frame));
                if let Some(percent) = percent(&frame["progress"]) {
                    bar.set_position(percent);
                }
                bar.set_message(status.to_owned());
            }
            (None, Output::Lines) => println!("{}", line(&frame)),
        }
        if let Some(code) = exit_code(status) {
            if let Some(bar) = &bar {
                if status == "succeeded" {
                    bar.set_position(100);
                }
                bar.finish();
            }
            return Ok(code);
        }
    }
}

/// One update as a line: `<id> <status> attempt <n>`, then its progress and error.
pub fn line(update: &Value) -> String {
    let mut line = format!(
        "{} {} attempt {}",
        field(update, "jobId"),
        field(update, "status"),
        update["attempt"]
    );
    if let Some(progress) = update.get("progress").filter(|p| !p.is_null()) {
        line.push_str(&format!(" progress {progress}"));
    }
    if let Some(error) = update["error"].as_str() {
        line.push_str(&format!(" error: {error}"));
    }
    line
}

/// A handler's progress as a percentage: a number, or `{"percent": N}` (as
/// the built-in `sleep` reports it).
fn percent(progress: &Value) -> Option<u64> {
    let percent = progress.as_f64().or_else(|| progress["percent"].as_f64())?;
    // Clamped to 0..=100, so the cast neither wraps nor truncates much.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(percent.clamp(0.0, 100.0) as u64)
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stdout());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg} ({elapsed})")
            .expect("the template is a constant that indicatif parses")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

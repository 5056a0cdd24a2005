//! Handlers every jobwire worker has, for demos, tests and benchmarks.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{HandlerResult, JobContext, JobError, Registry};

impl Registry {
    /// A registry with the built-in handlers:
    /// - `noop`: succeeds at once with a null result;
    /// - `echo`: succeeds with its payload as the result;
    /// - `sleep` `{"ms": N}`: waits N milliseconds, reporting progress halfway,
    ///   and stops early when told to;
    /// - `fail` `{"message": "..."}`: fails with that message.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        registry
            .register("noop", |_ctx, _payload| async { Ok(Value::Null) })
            .register("echo", |_ctx, payload| async { Ok(payload) })
            .register("sleep", sleep)
            .register("fail", |_ctx, payload: Value| async move {
                let message = payload
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("failed on purpose");
                Err(JobError::from(message))
            });
        registry
    }
}

async fn sleep(ctx: JobContext, payload: Value) -> HandlerResult {
    let ms = payload
        .get("ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| JobError::from("sleep needs a payload like {\"ms\": 100}"))?;
    let half = Duration::from_millis(ms / 2);
    pause(&ctx, half).await?;
    ctx.progress(json!({"percent": 50}))
        .await
        .map_err(|e| JobError::from(e.to_string()))?;
    pause(&ctx, Duration::from_millis(ms) - half).await?;
    Ok(json!({"sleptMs": ms}))
}

/// Sleeps, unless the job is told to stop first.
async fn pause(ctx: &JobContext, time: Duration) -> Result<(), JobError> {
    tokio::select! {
        _ = tokio::time::sleep(time) => Ok(()),
        _ = ctx.cancelled() => Err(JobError::from("stopped while sleeping")),
    }
}

impl Registry {
    /// Adds `trace` `{"ms": N}`, a test hook for the fault-injection suite:
    /// like `sleep`, and it appends the start and end of every attempt, with
    /// the time and this process's ID, to a file of this process in `dir`, so
    /// a test can prove no job ran in two places at once. Not for production:
    /// it writes files.
    pub fn with_trace(mut self, dir: std::path::PathBuf) -> Self {
        self.register("trace", move |ctx: JobContext, payload: Value| {
            let file = dir.join(format!("{}.log", std::process::id()));
            async move {
                let ms = payload.get("ms").and_then(Value::as_u64).unwrap_or(10);
                trace_line(&file, &ctx, "start")?;
                pause(&ctx, Duration::from_millis(ms)).await?;
                trace_line(&file, &ctx, "end")?;
                Ok(json!({"tracedMs": ms}))
            }
        });
        self
    }
}

fn trace_line(file: &std::path::Path, ctx: &JobContext, event: &str) -> Result<(), JobError> {
    use std::io::Write;
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let line = json!({"job": ctx.job_id(), "attempt": ctx.attempt(), "event": event,
        "atMs": at_ms as u64, "pid": std::process::id()});
    // One unbuffered O_APPEND write per line: it survives the process being killed.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()))
        .map_err(|e| JobError::from(format!("cannot write the trace: {e}")))
}

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
        .map_err(|e| JobError(e.to_string()))?;
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

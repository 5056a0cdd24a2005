//! End-to-end tests: real Postgres, real Redis, real sockets. Each test gets
//! its own database and Redis key prefix (see `support`), so they run in
//! parallel. One test binary, as in zero2prod.

#![allow(
    clippy::unwrap_used,
    reason = "a test that meets an unexpected None or Err should fail right there"
)]

/// Runs each named `async fn(Backend)` once on Postgres and Redis and once
/// embedded (SQLite and the in-process broker): same API, same behaviour.
macro_rules! in_both_modes {
    ($($test:ident),* $(,)?) => {
        mod postgres_redis {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::support::Backend::PostgresRedis).await
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::support::Backend::Embedded).await
                }
            )*
        }
    };
}

mod auth;
mod bad_input;
mod cli;
mod cli_commands;
mod contract;
mod cors;
mod custom_worker;
mod dashboard;
mod embedded;
mod fairness;
mod faults;
mod gap_fill;
mod isolation;
mod lifecycle;
mod limits;
mod logs;
mod lost_ids;
mod metrics;
mod operators;
#[cfg(feature = "otlp")]
mod otlp;
mod processes;
mod python_worker;
mod queue;
mod quotas;
mod realtime;
mod realtime_fairness;
mod reliability;
mod remote_workers;
mod resume_memory;
mod retention;
mod slow_client;
mod support;
mod tokens;
mod webhooks;
mod worker_types;

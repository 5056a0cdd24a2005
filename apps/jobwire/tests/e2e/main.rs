//! End-to-end tests: real Postgres, real Redis, real sockets. Each test gets
//! its own database and Redis key prefix (see `support`), so they run in
//! parallel. One test binary, as in zero2prod.

#![allow(
    clippy::unwrap_used,
    reason = "a test that meets an unexpected None or Err should fail right there"
)]

mod bad_input;
mod isolation;
mod lifecycle;
mod processes;
mod queue;
mod realtime;
mod slow_client;
mod support;

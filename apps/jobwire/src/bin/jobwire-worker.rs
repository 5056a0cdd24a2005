//! `jobwire-worker`: pops and runs jobs with the built-in handlers and the
//! webhooks of `jobwire.toml`. Run any number of them against one Postgres
//! and Redis. Its metrics are on a small listener of its own
//! (`JOBWIRE_METRICS_ADDR`), since it has no API. A worker with handlers of
//! your own is built the same way (see `jobwire_runtime::worker_main`).

use jobwire_worker::Registry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    jobwire_runtime::worker_main("jobwire-worker", Registry::with_builtins()).await
}

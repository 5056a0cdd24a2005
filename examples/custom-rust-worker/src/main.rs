//! `thumbnail-worker`: a jobwire worker with a handler of its own, built the
//! supported way: register the handlers, then hand the registry to the
//! standard runtime, which reads the same settings as `jobwire-worker`
//! (`--help` lists them). Run it beside `jobwire-api` on the same Postgres,
//! Redis and `JOBWIRE_PREFIX`; it runs `thumbnail` jobs only.

mod thumbnail;

use jobwire_worker::Registry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut registry = Registry::new();
    registry.register("thumbnail", thumbnail::thumbnail);
    jobwire_runtime::worker_main("thumbnail-worker", registry).await
}

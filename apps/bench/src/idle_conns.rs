//! `idle-conns`: the API's resident memory per idle WebSocket connection.

use std::time::Duration;

use anyhow::ensure;
use serde_json::json;

use crate::procfs::settled_rss_kb;
use crate::procs::{Engine, Run, ServerSettings, ensure_open_files};
use crate::report::Report;
use crate::ws_client;

/// How long the RSS may take to settle before the reading is taken anyway.
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// `shared` (jobwire-api) or `embedded` (jobwire, with its idle workers).
    #[arg(long, value_enum, default_value_t = Engine::Shared)]
    pub engine: Engine,
    /// Idle WebSocket clients, all of one tenant.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// WebSocket handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
}

pub async fn measure(run: &mut Run, p: &Params) -> anyhow::Result<Report> {
    ensure!(p.clients >= 1, "--clients must be at least 1");
    ensure_open_files(p.clients as u64 + 1024)?;
    let server = run
        .start_server(&ServerSettings {
            ws_queue: 1024,
            max_batch: 1000,
            concurrency: 1,
        })
        .await?;
    let token = run.token("idle")?;
    let (before, settled_before) = settled_rss_kb(server.pid, SETTLE_LIMIT).await?;
    let sockets =
        ws_client::connect_many(&server.addr, &[token], p.clients, p.connect_concurrency).await?;
    let (after, settled_after) = settled_rss_kb(server.pid, SETTLE_LIMIT).await?;
    run.check_children()?;
    drop(sockets);
    let per_connection = after.saturating_sub(before) as f64 / p.clients as f64;
    let logs = run.log_summary();
    let mut json = json!({
        "mode": "idle-conns",
        "engine": run.engine.name(),
        "clients": p.clients,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_connection": crate::stats::round2(per_connection),
        // Whether each reading stayed within 1 % for a second before it was taken.
        "settled": settled_before && settled_after,
        "bench_build": crate::BUILD,
    });
    logs.add_to(&mut json);
    Ok(Report::new(
        format!(
            "idle-conns, {}: {} idle WebSocket clients",
            run.engine.name(),
            p.clients
        ),
        json,
    )
    .row("API RSS before", format!("{before} KiB"))
    .row("API RSS after", format!("{after} KiB"))
    .row("per connection", format!("{per_connection:.2} KiB"))
    .row("readings settled", settled_before && settled_after)
    .row("log lines WARN / ERROR", logs.row()))
}

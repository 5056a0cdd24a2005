//! What Linux's /proc says about a child: resident memory and CPU time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;

/// `VmRSS` of a process, in KiB.
pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Reads the RSS of `pid` every 200 ms until it has stayed within 1 % (or
/// 256 KiB) for a second; gives up after `limit` and returns the last reading
/// and whether it settled.
pub async fn settled_rss_kb(pid: u32, limit: Duration) -> anyhow::Result<(u64, bool)> {
    const WINDOW: usize = 6; // readings 200 ms apart: one second
    let deadline = Instant::now() + limit;
    let mut readings: Vec<u64> = Vec::new();
    loop {
        readings.push(rss_kb(pid)?);
        let last = readings[readings.len().saturating_sub(WINDOW)..].to_vec();
        if last.len() == WINDOW {
            let (low, high) = (
                last.iter().copied().min().unwrap_or_default(),
                last.iter().copied().max().unwrap_or_default(),
            );
            if high - low <= (high / 100).max(256) {
                return Ok((last[WINDOW - 1], true));
            }
        }
        if Instant::now() > deadline {
            return Ok((readings[readings.len() - 1], false));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// User + system CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc/<pid>/stat")?
            .parse()
            .context("a tick count")
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / ticks_per_second()))
}

fn ticks_per_second() -> f64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        // Linux's USER_HZ is 100 on every architecture it runs on.
        _ => 100.0,
    }
}

/// CPU time of a set of processes from a starting point, as a percentage of
/// one core over the wall time since.
pub struct CpuMeter {
    started: Instant,
    at_start: HashMap<u32, Duration>,
}

impl CpuMeter {
    pub fn start(pids: &[(String, u32)]) -> CpuMeter {
        let at_start = pids
            .iter()
            .map(|(_, pid)| (*pid, cpu_time(*pid).unwrap_or_default()))
            .collect();
        CpuMeter {
            started: Instant::now(),
            at_start,
        }
    }

    /// `{name: percent of one core}` of each process since [`CpuMeter::start`]
    /// (processes started since count from zero).
    pub fn percent(&self, pids: &[(String, u32)]) -> serde_json::Map<String, serde_json::Value> {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        pids.iter()
            .filter_map(|(name, pid)| {
                let now = cpu_time(*pid).ok()?;
                let before = self.at_start.get(pid).copied().unwrap_or_default();
                let pct = 100.0 * now.saturating_sub(before).as_secs_f64() / wall;
                Some((name.clone(), serde_json::Value::from(pct.round() as i64)))
            })
            .collect()
    }
}

//! Tenants' quotas: defaults from flags (`--tenant-max-queued`, …), and
//! per-tenant overrides from a TOML file (`--quotas` / `JOBWIRE_QUOTAS`):
//!
//! ```toml
//! [tenants.acme]
//! max_queued = 100000   # jobs queued at once; more creates get 429
//! max_running = 50      # jobs running at once, across every worker
//! rate = 200            # jobs created per second (token bucket); more get 429
//! burst = 1000          # jobs created at once after a quiet spell
//! weight = 3            # served 3 jobs to a weight-1 tenant's 1
//! ```
//!
//! Anything wrong in the file (an unknown field, a tenant ID that is not
//! one, a zero) stops the API at startup naming the file and the tenant: a
//! quota half read would throttle the wrong tenant.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use jobwire_core::{QuotaOverride, TenantId};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    /// Read one by one, so that an error names its tenant.
    #[serde(default)]
    tenants: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSection {
    max_queued: Option<u64>,
    max_running: Option<u32>,
    rate: Option<f64>,
    burst: Option<u32>,
    weight: Option<u32>,
}

/// The per-tenant overrides in `text`, the contents of `file`.
pub(crate) fn parse_overrides(
    file: &Path,
    text: &str,
) -> anyhow::Result<HashMap<TenantId, QuotaOverride>> {
    let parsed: QuotaFile = toml::from_str(text)
        .with_context(|| format!("{} is not a valid quota file", file.display()))?;
    let mut overrides = HashMap::new();
    for (name, table) in parsed.tenants {
        let tenant = section(&name, table).with_context(|| {
            format!(
                "{}: tenant `{name}` (section [tenants.{name}])",
                file.display()
            )
        })?;
        overrides.insert(tenant.0, tenant.1);
    }
    Ok(overrides)
}

fn section(name: &str, table: toml::Value) -> anyhow::Result<(TenantId, QuotaOverride)> {
    let tenant: TenantId = name
        .parse()
        .map_err(|e| anyhow::anyhow!("not a tenant ID: {e}"))?;
    let s: TenantSection = table.try_into()?;
    let positive = |field: &str, zero: bool| {
        if zero {
            anyhow::bail!("`{field}` must be at least 1");
        }
        Ok(())
    };
    positive("max_queued", s.max_queued == Some(0))?;
    positive("max_running", s.max_running == Some(0))?;
    positive("burst", s.burst == Some(0))?;
    positive("weight", s.weight == Some(0))?;
    if let Some(rate) = s.rate {
        check_rate(rate)?;
    }
    if s.weight.is_some_and(|w| w > MAX_WEIGHT) {
        anyhow::bail!("`weight` is at most {MAX_WEIGHT}");
    }
    Ok((
        tenant,
        QuotaOverride {
            max_queued: s.max_queued,
            max_running: s.max_running,
            rate: s.rate,
            burst: s.burst,
            weight: s.weight,
        },
    ))
}

/// Heaviest weight: a tenant served a thousand jobs to another's one is
/// already the other's starvation.
const MAX_WEIGHT: u32 = 1000;

/// A create rate: jobs per second, from one in about 17 minutes to a
/// billion (a bucket's refill time must stay a number Redis can expire by).
pub(crate) fn check_rate(rate: f64) -> anyhow::Result<f64> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        anyhow::bail!(
            "a rate is a number of jobs per second from {MIN_RATE} to {MAX_RATE}, not {rate}"
        );
    }
    Ok(rate)
}

const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1e9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_gives_each_tenant_its_overrides() {
        let text = "[tenants.acme]\nmax_running = 5\nweight = 3\n[tenants.beta]\nrate = 2.5\n";
        let overrides = parse_overrides(Path::new("q.toml"), text).expect("a valid file");
        let acme = &overrides[&"acme".parse().expect("a valid tenant")];
        assert_eq!(
            (acme.max_running, acme.weight, acme.rate),
            (Some(5), Some(3), None)
        );
        let beta = &overrides[&"beta".parse().expect("a valid tenant")];
        assert_eq!(beta.rate, Some(2.5));
    }

    #[test]
    fn a_wrong_section_is_named_with_its_file() {
        for (text, says) in [
            (
                "[tenants.acme]\nmax_runing = 5\n",
                "unknown field `max_runing`",
            ),
            (
                "[tenants.acme]\nweight = 0\n",
                "`weight` must be at least 1",
            ),
            ("[tenants.acme]\nrate = -1.0\n", "from 0.001"),
            ("[tenants.\"a b\"]\nrate = 1.0\n", "not a tenant ID"),
        ] {
            let e = parse_overrides(Path::new("q.toml"), text).expect_err(text);
            let chain = format!("{e:#}");
            assert!(chain.contains("q.toml") && chain.contains(says), "{chain}");
        }
    }
}

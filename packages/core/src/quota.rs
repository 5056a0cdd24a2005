//! Per-tenant quotas and dispatch weights: defaults for every tenant, with
//! per-tenant overrides. The API enforces `max_queued` and the create rate
//! when jobs are created; the broker enforces `max_running` and the weight
//! when workers take jobs, so every process obeys the same numbers.

use std::collections::HashMap;
use std::time::Duration;

use crate::TenantId;

/// One tenant's quotas and weight. `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Most jobs queued (waiting for a worker) at once; a create that would
    /// pass it is refused (429).
    pub max_queued: Option<u64>,
    /// Most jobs running at once, across every worker; others wait queued.
    pub max_running: Option<u32>,
    /// Jobs created per second, on average (a token bucket); more are refused (429).
    pub rate: Option<f64>,
    /// The bucket's size: how many jobs may be created at once after a quiet spell.
    pub burst: Option<u32>,
    /// The tenant's share of workers against other tenants with work queued at
    /// the same priority and type: a tenant of weight 3 is served three jobs to
    /// another's one.
    pub weight: u32,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            max_queued: None,
            max_running: None,
            rate: None,
            burst: None,
            weight: 1,
        }
    }
}

impl Quota {
    /// Whether creating jobs must be checked against this quota at all.
    pub fn limits_creates(&self) -> bool {
        self.max_queued.is_some() || self.rate.is_some()
    }

    /// The token bucket, if there is a rate: jobs per second and size. Without
    /// an explicit burst the bucket holds one second of jobs (at least one).
    pub fn bucket(&self) -> Option<(f64, u32)> {
        let rate = self.rate?;
        let burst = self.burst.unwrap_or_else(|| rate.ceil().max(1.0) as u32);
        Some((rate, burst))
    }
}

/// Part of a [`Quota`] set for one tenant: what is left `None` comes from
/// the defaults (except the burst of a tenant given its own rate, which is
/// then one second of that rate unless set too).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QuotaOverride {
    pub max_queued: Option<u64>,
    pub max_running: Option<u32>,
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    pub weight: Option<u32>,
}

/// Every tenant's quota: defaults, and overrides by tenant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quotas {
    pub defaults: Quota,
    pub overrides: HashMap<TenantId, QuotaOverride>,
}

impl Quotas {
    /// `tenant`'s quota: its overrides over the defaults.
    pub fn of(&self, tenant: &TenantId) -> Quota {
        let Some(over) = self.overrides.get(tenant) else {
            return self.defaults;
        };
        let d = self.defaults;
        Quota {
            max_queued: over.max_queued.or(d.max_queued),
            max_running: over.max_running.or(d.max_running),
            rate: over.rate.or(d.rate),
            // A rate set for the tenant alone brings its own bucket size:
            // the default burst was sized for the default rate.
            burst: match over.rate {
                Some(_) => over.burst,
                None => over.burst.or(d.burst),
            },
            weight: over.weight.unwrap_or(d.weight),
        }
    }
}

/// Why a create was refused by its tenant's quota, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The tenant already has `queued` jobs waiting, and may have at most `max`.
    QueueFull { queued: u64, max: u64 },
    /// The tenant is creating jobs faster than its rate; enough of its bucket
    /// refills after `retry_after`.
    RateLimited { retry_after: Duration },
    /// More jobs in one request than the tenant's bucket ever holds.
    OverBurst { jobs: u64, burst: u32 },
    /// More jobs in one request than the tenant may ever have queued.
    OverQueue { jobs: u64, max: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_replaces_only_what_it_sets() {
        let acme: TenantId = "acme".parse().expect("a valid tenant");
        let quotas = Quotas {
            defaults: Quota {
                max_queued: Some(100),
                rate: Some(10.0),
                ..Quota::default()
            },
            overrides: HashMap::from([(
                acme.clone(),
                QuotaOverride {
                    rate: Some(50.0),
                    weight: Some(3),
                    ..QuotaOverride::default()
                },
            )]),
        };
        let q = quotas.of(&acme);
        assert_eq!(
            (q.max_queued, q.rate, q.weight, q.bucket()),
            (Some(100), Some(50.0), 3, Some((50.0, 50)))
        );
        let other = quotas.of(&"other".parse().expect("a valid tenant"));
        assert_eq!((other.rate, other.weight), (Some(10.0), 1));
    }
}

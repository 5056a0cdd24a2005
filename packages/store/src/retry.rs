use std::time::Duration;

use crate::Outcome;
use chrono::Utc;
use jobwire_core::Job;

/// Exponential backoff with full jitter between failed attempts: the n-th
/// retry waits a random time up to `min(cap, base * 2^(n-1))`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before the retry that follows failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: i32) -> Duration {
        let doublings = attempt.saturating_sub(1).clamp(0, 30) as u32;
        let ceiling = self.base.saturating_mul(1 << doublings).min(self.cap);
        Duration::from_millis(fastrand::u64(0..=ceiling.as_millis() as u64))
    }

    /// What a failed attempt of `job` becomes: a retry while attempts are left.
    pub fn after_failure(&self, job: &Job, error: String) -> Outcome {
        if job.attempt < job.max_attempts {
            let wait = chrono::Duration::from_std(self.backoff(job.attempt)).unwrap_or_default();
            Outcome::Retry {
                error,
                run_at: Utc::now() + wait,
            }
        } else {
            Outcome::Failed(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_doubling_ceiling_and_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(3) <= Duration::from_millis(400));
            assert!(policy.backoff(30) <= Duration::from_millis(1000));
        }
        let spread: std::collections::HashSet<Duration> =
            (0..50).map(|_| policy.backoff(5)).collect();
        assert!(spread.len() > 10, "full jitter spreads retries out");
    }
}

//! How long finished jobs are kept. A sweeper deletes a job once its
//! retention has passed since it finished: its own `retainFor` if it was
//! created with one, else the retention of its final status.

use std::time::Duration;

use crate::{InvalidValue, Status};

/// How long an idempotency key keeps answering with its first job, counted
/// from the job's creation, whatever the retention: a job created with a key
/// is never deleted before this. The stores' SQL spells it `24 hours` too.
pub const IDEMPOTENCY_KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The shortest `retainFor`: under a second, a client could not even read
/// the job it just saw finish.
pub const MIN_RETAIN_FOR: Duration = Duration::from_secs(1);

/// The longest `retainFor`: ten years (humantime's `10y`). Beyond it a
/// duration is a mistake, and the arithmetic on it could overflow.
pub const MAX_RETAIN_FOR: Duration = Duration::from_secs(10 * 31_557_600);

/// The retention of each final status, for jobs created without `retainFor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub succeeded: Duration,
    pub failed: Duration,
    pub cancelled: Duration,
}

impl Default for Retention {
    /// A day for succeeded and cancelled jobs, a week for failed ones (the
    /// dead letter, which someone may want to look at after a weekend).
    fn default() -> Self {
        Self {
            succeeded: Duration::from_secs(24 * 3600),
            failed: Duration::from_secs(7 * 24 * 3600),
            cancelled: Duration::from_secs(24 * 3600),
        }
    }
}

impl Retention {
    /// The final statuses, each with its retention.
    pub fn by_status(&self) -> [(Status, Duration); 3] {
        [
            (Status::Succeeded, self.succeeded),
            (Status::Failed, self.failed),
            (Status::Cancelled, self.cancelled),
        ]
    }
}

/// A job's `retainFor` as a client writes it (humantime: `90s`, `7d`,
/// `1h 30m`), from [`MIN_RETAIN_FOR`] to [`MAX_RETAIN_FOR`].
pub fn parse_retain_for(text: &str) -> Result<Duration, InvalidValue> {
    let duration = humantime::parse_duration(text).map_err(|e| {
        InvalidValue(format!(
            "`retainFor` must be a duration such as \"90s\", \"12h\" or \"7d\"; `{text}` is not one ({e})"
        ))
    })?;
    if !(MIN_RETAIN_FOR..=MAX_RETAIN_FOR).contains(&duration) {
        return Err(InvalidValue(format!(
            "`retainFor` must be from 1s to 10y; `{text}` is {}",
            humantime::format_duration(duration)
        )));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_for_takes_humantime_durations_within_bounds() {
        assert_eq!(parse_retain_for("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_retain_for("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_retain_for("10y"), Ok(MAX_RETAIN_FOR));
        for bad in ["", "soon", "90", "-1s", "500ms", "11y", "1000000000000y"] {
            assert!(parse_retain_for(bad).is_err(), "{bad}");
        }
    }
}

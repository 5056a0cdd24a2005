//! Test hooks that make a worker fail at one chosen point, once, the way a
//! fault would: for the fault-injection suite, never for production.

use std::sync::atomic::{AtomicBool, Ordering};

/// Where a worker fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// The first non-empty pop's reply is lost after the broker moved the
    /// IDs onto this worker's processing list (as a timeout would).
    LosePopReply,
    /// The first round trip that acknowledges popped IDs fails.
    FailFirstAck,
    /// The process exits right after outcomes commit, before their updates
    /// are published.
    ExitAfterFinish,
}

impl std::str::FromStr for Failpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lose-pop-reply" => Ok(Self::LosePopReply),
            "fail-first-ack" => Ok(Self::FailFirstAck),
            "exit-after-finish" => Ok(Self::ExitAfterFinish),
            other => Err(format!(
                "unknown worker failpoint `{other}` (known: lose-pop-reply, fail-first-ack, \
                 exit-after-finish)"
            )),
        }
    }
}

/// A failpoint that fires at most once.
#[derive(Debug, Default)]
pub(crate) struct Armed {
    point: Option<Failpoint>,
    fired: AtomicBool,
}

impl Armed {
    pub(crate) fn new(point: Option<Failpoint>) -> Self {
        Self {
            point,
            fired: AtomicBool::new(false),
        }
    }

    /// Whether the worker is to fail at `point` now (true once at most).
    pub(crate) fn fire(&self, point: Failpoint) -> bool {
        self.point == Some(point) && !self.fired.swap(true, Ordering::AcqRel)
    }
}

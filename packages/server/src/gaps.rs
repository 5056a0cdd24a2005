//! Finds changes whose update never arrived. Every write moves a job to the
//! next place in the change feed (`cursor`), and this instance's subscriber
//! sees every tenant's updates, so a place it never saw is a change that was
//! committed but not published (its process died in between, or the publish
//! failed) or published while the subscription was down.

use std::collections::BTreeSet;

/// Most places looked up per check; a larger gap is looked up over several checks.
const MAX_PER_CHECK: i64 = 10_000;

/// Places seen, since the last check.
#[derive(Debug, Default)]
pub(crate) struct Gaps {
    /// Every place below this one was seen or looked up.
    low: Option<i64>,
    seen: BTreeSet<i64>,
    /// The highest place seen at the previous check: later places get one
    /// more check's time to arrive before they count as missing.
    horizon: Option<i64>,
}

impl Gaps {
    pub(crate) fn saw(&mut self, place: i64) {
        let low = *self.low.get_or_insert(place);
        if place >= low {
            self.seen.insert(place);
        }
    }

    /// The places up to the previous check's horizon that were never seen.
    pub(crate) fn missing(&mut self) -> Vec<i64> {
        let (Some(low), Some(horizon)) = (self.low, self.horizon) else {
            self.horizon = self.seen.last().copied();
            return Vec::new();
        };
        let upto = horizon.min(low + MAX_PER_CHECK - 1);
        let missing: Vec<i64> = (low..=upto).filter(|p| !self.seen.contains(p)).collect();
        self.seen = self.seen.split_off(&(upto + 1));
        self.low = Some(upto + 1);
        self.horizon = self
            .seen
            .last()
            .copied()
            .or(Some(horizon))
            .filter(|h| *h > upto);
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_never_seen_is_missing_after_one_more_check() {
        let mut gaps = Gaps::default();
        for place in [10, 11, 13, 14] {
            gaps.saw(place);
        }
        assert!(
            gaps.missing().is_empty(),
            "the first check only sets the horizon"
        );
        gaps.saw(12);
        gaps.saw(17);
        assert!(gaps.missing().is_empty(), "12 arrived late, within a check");
        assert_eq!(gaps.missing(), [15, 16]);
        assert!(gaps.missing().is_empty());
    }
}

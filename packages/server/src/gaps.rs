//! Finds changes whose update never arrived. Every write moves a job to the
//! next place in the change feed (`cursor`), and this instance's subscriber
//! sees every tenant's updates, so a place it never saw is a change that was
//! committed but not published (its process died in between, or the publish
//! failed) or published while the subscription was down.

use std::collections::BTreeSet;

/// Most missing places looked up per check; more are looked up over several
/// checks. Places seen cost nothing here, so the rate of changes is not capped.
const MAX_MISSING_PER_CHECK: usize = 10_000;

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
        let mut upto = horizon;
        let mut missing = Vec::new();
        for place in low..=horizon {
            if !self.seen.contains(&place) {
                if missing.len() == MAX_MISSING_PER_CHECK {
                    upto = place - 1;
                    break;
                }
                missing.push(place);
            }
        }
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

    #[test]
    fn many_changes_seen_between_two_checks_are_not_capped() {
        let mut gaps = Gaps::default();
        gaps.saw(1);
        assert!(gaps.missing().is_empty());
        for place in 2..=100_000 {
            if place != 99_999 {
                gaps.saw(place);
            }
        }
        assert_eq!(
            gaps.missing(),
            Vec::<i64>::new(),
            "only up to the horizon, 1"
        );
        assert_eq!(
            gaps.missing(),
            [99_999],
            "a gap far past the old 10,000-place window is found in one check"
        );
    }
}

//! Finds changes whose update never arrived. Every write moves a job to the
//! next place in the change feed (`cursor`), and this instance's subscriber
//! sees every tenant's updates, so a place it never saw is a change that was
//! committed but not published (its process died in between, or the publish
//! failed) or published while the subscription was down.

use std::collections::BTreeSet;

/// Most missing places looked up per check; more are looked up over several
/// checks. Places seen cost nothing here, so the rate of changes is not capped.
const MAX_MISSING_PER_CHECK: usize = 10_000;
/// Most places kept between checks. Past it (lookups far behind the rate of
/// changes) the oldest places are given up on, so memory stays bounded.
const MAX_SEEN: usize = 1_000_000;

/// Places seen, since the last check.
#[derive(Debug, Default)]
pub(crate) struct Gaps {
    /// Every place below this one was seen or looked up.
    low: Option<i64>,
    seen: BTreeSet<i64>,
    /// The newest place known at the previous check (seen, or committed in
    /// the store): places up to it that were not seen since are missing;
    /// later ones get one more check's time to arrive.
    horizon: Option<i64>,
    /// Places whose lookup failed, looked up again at the next check.
    retry: Vec<i64>,
}

impl Gaps {
    /// A tracker for the changes after `place`: the newest when this instance
    /// started, so that a change made while it was still subscribing (which
    /// no one published to it) is looked up too.
    pub(crate) fn after(place: i64) -> Self {
        Self {
            low: Some(place + 1),
            ..Self::default()
        }
    }

    pub(crate) fn saw(&mut self, place: i64) {
        let low = *self.low.get_or_insert(place);
        if place >= low {
            self.seen.insert(place);
        }
        if self.seen.len() > MAX_SEEN {
            // The lookups are too far behind to catch up: the oldest places
            // count as looked up (their lookups cannot keep pace anyway).
            let given_up = self.seen.len() - MAX_SEEN / 2;
            let keep_from = *self.seen.iter().nth(given_up).unwrap_or(&place);
            tracing::warn!(
                from = low,
                to = keep_from - 1,
                "the gap check is too far behind; not looking for missing changes in between"
            );
            self.seen = self.seen.split_off(&keep_from);
            self.low = Some(keep_from);
        }
    }

    /// The places up to the previous check's horizon that were never seen,
    /// with those whose lookup failed last time. `latest` is the newest
    /// place committed in the store now, so that a change at the very end,
    /// whose update never came, is found although nothing comes after it.
    pub(crate) fn missing(&mut self, latest: Option<i64>) -> Vec<i64> {
        let newest = self.seen.last().copied().max(latest);
        let mut missing = std::mem::take(&mut self.retry);
        let (Some(low), Some(horizon)) = (self.low, self.horizon) else {
            // The first check: changes from before this instance started are
            // not its concern (clients resume them by cursor).
            if self.low.is_none() {
                self.low = latest.map(|latest| latest + 1);
            }
            self.horizon = newest;
            return missing;
        };
        let mut upto = horizon;
        for place in low..=horizon {
            if !self.seen.contains(&place) {
                if missing.len() >= MAX_MISSING_PER_CHECK {
                    upto = place - 1;
                    break;
                }
                missing.push(place);
            }
        }
        self.seen = self.seen.split_off(&(upto + 1));
        self.low = Some(low.max(upto + 1));
        self.horizon = newest.filter(|h| *h > upto).or(Some(horizon));
        missing
    }

    /// `places` could not be looked up now: look them up at the next check.
    pub(crate) fn failed(&mut self, mut places: Vec<i64>) {
        places.truncate(MAX_MISSING_PER_CHECK);
        self.retry = places;
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
            gaps.missing(None).is_empty(),
            "the first check only sets the horizon"
        );
        gaps.saw(12);
        gaps.saw(17);
        assert!(
            gaps.missing(None).is_empty(),
            "12 arrived late, within a check"
        );
        assert_eq!(gaps.missing(None), [15, 16]);
        assert!(gaps.missing(None).is_empty());
    }

    #[test]
    fn many_changes_seen_between_two_checks_are_not_capped() {
        let mut gaps = Gaps::default();
        gaps.saw(1);
        assert!(gaps.missing(None).is_empty());
        for place in 2..=100_000 {
            if place != 99_999 {
                gaps.saw(place);
            }
        }
        assert_eq!(
            gaps.missing(None),
            Vec::<i64>::new(),
            "only up to the horizon, 1"
        );
        assert_eq!(
            gaps.missing(None),
            [99_999],
            "a gap far past the old 10,000-place window is found in one check"
        );
    }

    #[test]
    fn a_change_at_the_end_whose_update_never_came_is_missing_with_nothing_after_it() {
        let mut gaps = Gaps::default();
        gaps.saw(5);
        gaps.saw(6);
        // 7 committed (the store says so), but its update never came, and
        // nothing changes after it.
        assert!(gaps.missing(Some(7)).is_empty());
        assert_eq!(gaps.missing(Some(7)), [7]);
        assert!(gaps.missing(Some(7)).is_empty(), "looked up once");
    }

    #[test]
    fn changes_from_before_the_first_check_are_not_looked_up() {
        let mut gaps = Gaps::default();
        assert!(gaps.missing(Some(1_000)).is_empty());
        assert!(gaps.missing(Some(1_000)).is_empty());
        assert_eq!(gaps.missing(Some(1_002)), Vec::<i64>::new());
        assert_eq!(gaps.missing(Some(1_002)), [1_001, 1_002]);
    }

    #[test]
    fn a_failed_lookup_is_tried_again() {
        let mut gaps = Gaps::default();
        gaps.saw(1);
        gaps.missing(Some(3));
        let missing = gaps.missing(Some(3));
        assert_eq!(missing, [2, 3]);
        gaps.failed(missing);
        assert_eq!(gaps.missing(Some(3)), [2, 3]);
        assert!(gaps.missing(Some(3)).is_empty());
    }

    #[test]
    fn places_kept_stay_bounded_when_lookups_fall_behind() {
        let mut gaps = Gaps::default();
        gaps.saw(0);
        gaps.missing(None);
        // Every other place missing, far more than one check looks up.
        for place in (0..3 * MAX_SEEN as i64).step_by(2) {
            gaps.saw(place);
        }
        assert!(gaps.seen.len() <= MAX_SEEN);
        for _ in 0..3 {
            assert!(gaps.missing(None).len() <= MAX_MISSING_PER_CHECK);
            assert!(gaps.seen.len() <= MAX_SEEN);
        }
    }

    #[test]
    fn a_change_made_before_the_first_update_arrives_is_missing_when_started_after_a_place() {
        let mut gaps = Gaps::after(100);
        // 101 committed while the subscription was being set up; 102 arrived.
        gaps.saw(102);
        assert!(gaps.missing(Some(102)).is_empty());
        assert_eq!(gaps.missing(Some(102)), [101]);
    }
}

//! Percentiles of latency samples, picked as the peer benchmark picks them.

/// p50, p90, p99 and max of a set of samples, in their unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// `None` when there are no samples.
    pub fn of(mut samples: Vec<f64>) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(Percentiles {
            p50: percentile(&samples, 0.50),
            p90: percentile(&samples, 0.90),
            p99: percentile(&samples, 0.99),
            max: percentile(&samples, 1.0),
        })
    }
}

/// The sample at rank `floor(q × n)` of sorted samples (the last one for q = 1),
/// as the peer computes it.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[rank]
}

/// Rounds to two decimals, for JSON figures in milliseconds.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rounds a rate to a whole number, for JSON figures in jobs or frames per second.
pub fn whole(x: f64) -> i64 {
    x.round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_floor_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        let p = Percentiles::of(samples).expect("samples given");
        assert_eq!((p.p50, p.p90, p.p99, p.max), (51.0, 91.0, 100.0, 100.0));
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let p = Percentiles::of(vec![7.0]).expect("one sample given");
        assert_eq!((p.p50, p.p99, p.max), (7.0, 7.0, 7.0));
        assert!(Percentiles::of(Vec::new()).is_none());
    }

    #[test]
    fn round2_keeps_two_decimals() {
        assert_eq!(round2(1.23456), 1.23);
        assert_eq!(round2(2.0), 2.0);
    }
}

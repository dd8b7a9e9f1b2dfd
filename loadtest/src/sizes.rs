//! The message size mix: a quantile function fitted to typical mailbox statistics (median
//! ~10 KiB, p90 ~100 KiB, p99 ~750 KiB, at most 1 MiB), sampled deterministically.

use crate::rng::SplitMix64;

/// Smallest message the mix produces (headers and a short body).
pub const SIZE_MIN_BYTES: usize = 1_500;
/// Largest message the mix produces.
pub const SIZE_MAX_BYTES: usize = 1024 * 1024;
const _: () = assert!(SIZE_MIN_BYTES == 1_500 && SIZE_MAX_BYTES == 1_048_576); // as in QUANTILES

/// (quantile, size in bytes): the curve between them is log-linear, so each named quantile is
/// met exactly.
const QUANTILES: [(f64, f64); 5] =
    [(0.0, 1_500.0), (0.5, 10.0 * 1024.0), (0.9, 100.0 * 1024.0), (0.99, 750.0 * 1024.0), (1.0, 1_048_576.0)];

/// The size at quantile `u` in `[0, 1]` of the mix.
#[allow(clippy::cast_sign_loss)] // sizes are positive by construction
pub fn size_at_quantile(u: f64) -> usize {
    let u = u.clamp(0.0, 1.0);
    let mut lower = QUANTILES[0];
    for upper in &QUANTILES[1..] {
        if u <= upper.0 {
            let fraction = (u - lower.0) / (upper.0 - lower.0);
            let log_size = lower.1.ln() + fraction * (upper.1.ln() - lower.1.ln());
            return log_size.exp().round() as usize;
        }
        lower = *upper;
    }
    SIZE_MAX_BYTES
}

/// A size drawn from the mix, capped at `size_max` (which is never below [`SIZE_MIN_BYTES`]).
pub fn sample_size(rng: &mut SplitMix64, size_max: usize) -> usize {
    size_at_quantile(rng.next_f64()).min(size_max.max(SIZE_MIN_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_quantiles_are_met() {
        assert_eq!(size_at_quantile(0.5), 10 * 1024);
        assert_eq!(size_at_quantile(0.9), 100 * 1024);
        assert_eq!(size_at_quantile(0.99), 750 * 1024);
        assert_eq!(size_at_quantile(1.0), SIZE_MAX_BYTES);
        assert_eq!(size_at_quantile(0.0), SIZE_MIN_BYTES);
    }

    #[test]
    fn samples_follow_the_mix() {
        let mut rng = SplitMix64::new(42, 0);
        let mut sizes: Vec<usize> = (0..20_000).map(|_| sample_size(&mut rng, SIZE_MAX_BYTES)).collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        assert!((9 * 1024..11 * 1024).contains(&median), "median {median}");
        assert!(sizes.iter().all(|size| (SIZE_MIN_BYTES..=SIZE_MAX_BYTES).contains(size)));
    }
}

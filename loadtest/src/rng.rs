//! A tiny deterministic generator (`SplitMix64`): the corpus must be the same for a seed on every
//! machine and every version, which a general-purpose RNG crate does not promise.

/// `SplitMix64` (Steele, Lea, Flood 2014): 64 bits of state, good enough statistics for test data.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator for `stream` under `seed`: message `i` of a seed always gets the same bytes,
    /// whatever the message count or concurrency.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut mixer = Self { state: seed ^ stream.wrapping_mul(0xD605_BBB5_8C8A_BBE5) };
        let state = mixer.next_u64();
        Self { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 mantissa exactly
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, bound)`; `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        // Lemire's multiply-shift: the bias is below 2^-64 · bound, irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform index into a slice of `length` (positive).
    pub fn index(&mut self, length: usize) -> usize {
        self.below(length as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| SplitMix64::new(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|pair| pair[0] == pair[1]));
        assert_ne!(SplitMix64::new(7, 1).next_u64(), SplitMix64::new(7, 2).next_u64());
        assert_ne!(SplitMix64::new(7, 1).next_u64(), SplitMix64::new(8, 1).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1, 1);
        assert!((0..10_000).all(|_| rng.below(10) < 10));
        let unit = rng.next_f64();
        assert!((0.0..1.0).contains(&unit));
    }
}

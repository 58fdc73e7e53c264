//! The generator's own pseudo-random numbers and skewed choices.
//!
//! A hand-written SplitMix64 rather than the `rand` crate: the stream a seed produces is
//! part of the generator's contract (benchmarks compare runs, tests pin stories), and a
//! dependency's algorithm may change between releases.

/// SplitMix64 (Steele, Lea, Flood 2014): one u64 of state, passes BigCrush, and is cheap.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// A new independent stream, derived from this one's seed and a label, so adding a
    /// draw in one part of the generator does not shift every other part.
    pub fn fork(seed: u64, label: u64) -> Rng {
        Rng::new(mix(seed ^ mix(label.wrapping_add(0x9E37_79B9_7F4A_7C15))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `0..n` (`n` > 0); the tiny modulo bias is irrelevant here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The SplitMix64 finaliser: a bijective mix of 64 bits, also used as a stable hash.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of several numbers, for values that must be the same every time an
/// entity appears (a user's access key, a role session's temporary key).
pub fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x51_7CC1_B727_220A, |acc, &part| mix(acc ^ mix(part)))
}

/// A discrete distribution over `0..weights.len()`, sampled by binary search over the
/// cumulative weights.
#[derive(Debug, Clone)]
pub struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    pub fn new(weights: &[f64]) -> Weighted {
        let mut total = 0.0;
        let cumulative = weights
            .iter()
            .map(|weight| {
                total += weight.max(0.0);
                total
            })
            .collect();
        Weighted { cumulative }
    }

    /// Zipf-like weights `1 / (rank + 1)^exponent`: a few items dominate and a long tail
    /// is still drawn, as users, keys, buckets and IPs are in real trails.
    pub fn zipf(n: usize, exponent: f64) -> Weighted {
        let weights: Vec<f64> = (0..n.max(1))
            .map(|rank| 1.0 / ((rank + 1) as f64).powf(exponent))
            .collect();
        Weighted::new(&weights)
    }

    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.unit() * total;
        let index = self.cumulative.partition_point(|&c| c <= target);
        index.min(self.cumulative.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn zipf_is_skewed_and_covers_the_tail() {
        let table = Weighted::zipf(100, 1.1);
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 100];
        for _ in 0..100_000 {
            counts[table.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[10] * 5);
        assert!(counts.iter().filter(|&&c| c > 0).count() > 90);
    }
}

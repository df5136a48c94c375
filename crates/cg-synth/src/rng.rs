//! A small, fixed pseudo-random generator, so a corpus depends only on its seed and never on a
//! crate's version: SplitMix64 to derive per-entity seeds, xoshiro256** to draw.
//!
//! Every entity (member `i`, content item `j`) gets its own stream from `(seed, stream, index)`,
//! which makes each row a pure function of its index: generation streams in bounded memory and
//! any row can be recomputed (the content pass recomputes its author's profile).

/// SplitMix64 finaliser: a strong 64-bit mix.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which kind of entity a stream draws for.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    /// A member's profile.
    Member = 1,
    /// A member's consent history.
    Consent = 2,
    /// A content item.
    Content = 3,
    /// A member's names.
    Names = 4,
    /// A member's notices and erasure requests.
    Facts = 5,
}

/// xoshiro256** seeded through SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The generator for `(seed, stream, index)`.
    pub fn for_entity(seed: u64, stream: Stream, index: u64) -> Rng {
        let mut x = mix64(seed ^ mix64((stream as u64) << 56 ^ index));
        let mut s = [0u64; 4];
        for slot in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            *slot = mix64(x);
        }
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)`; `n == 0` yields 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias is irrelevant for synthetic data.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[lo, hi]` (inclusive); `hi < lo` yields `lo`.
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + self.below(span) as i64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniformly chosen element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A decimal digit as a char.
    pub fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }
}

/// A weighted choice table built once: `pick` is a binary search over cumulative weights.
#[derive(Clone, Debug)]
pub struct Weighted<T> {
    items: Vec<T>,
    cumulative: Vec<u64>,
}

impl<T> Weighted<T> {
    /// From `(item, weight)` pairs; zero weights are allowed, the total must be positive.
    pub fn new(pairs: impl IntoIterator<Item = (T, u64)>) -> Weighted<T> {
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for (item, w) in pairs {
            total += w;
            items.push(item);
            cumulative.push(total);
        }
        Weighted { items, cumulative }
    }

    /// A weighted random item.
    pub fn pick(&self, rng: &mut Rng) -> &T {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let x = rng.below(total);
        let i = self.cumulative.partition_point(|c| *c <= x);
        &self.items[i.min(self.items.len().saturating_sub(1))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_entity(7, Stream::Member, 1).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r1 = Rng::for_entity(7, Stream::Member, 1);
        let mut r2 = Rng::for_entity(7, Stream::Member, 2);
        let mut r3 = Rng::for_entity(8, Stream::Member, 1);
        let x = r1.next_u64();
        assert_ne!(x, r2.next_u64());
        assert_ne!(x, r3.next_u64());
    }

    #[test]
    fn known_answer_keeps_corpora_stable_across_releases() {
        // If this changes, every corpus generated with a given seed changes: bump the corpus
        // format version instead of editing the number.
        let mut r = Rng::for_entity(7, Stream::Content, 42);
        assert_eq!(r.next_u64(), KNOWN);
    }
    const KNOWN: u64 = 9_251_952_106_631_359_498;

    #[test]
    fn weighted_pick_respects_weights() {
        let w = Weighted::new([("a", 1), ("b", 0), ("c", 3)]);
        let mut rng = Rng::for_entity(1, Stream::Member, 0);
        let mut counts = [0; 3];
        for _ in 0..40_000 {
            match *w.pick(&mut rng) {
                "a" => counts[0] += 1,
                "b" => counts[1] += 1,
                _ => counts[2] += 1,
            }
        }
        assert_eq!(counts[1], 0);
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut rng = Rng::for_entity(3, Stream::Names, 9);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            let x = rng.range_i64(-3, 3);
            assert!((-3..=3).contains(&x));
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.range_i64(5, 1), 5);
    }
}

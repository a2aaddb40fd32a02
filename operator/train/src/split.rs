//! The train/validation split. Each row goes to validation when a hash of (seed, the row's
//! global index) falls under `testFraction`: a function of the row alone, so the split is the
//! same on every run, on any number of threads, and a row keeps its side when rows elsewhere
//! are dropped for nulls. The hash is SplitMix64, a few lines in any language:
//!
//! ```text
//! u = splitmix64(splitmix64(seed) XOR index) / 2^64      validation iff u < testFraction
//! ```

/// How the split is described in `metrics.json`.
pub(crate) const METHOD: &str =
    "u = splitmix64(splitmix64(seed) ^ rowIndex) / 2^64; validation iff u < testFraction";

/// SplitMix64's output function (Steele, Lea and Flood 2014), as in `java.util.SplittableRandom`.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether the row with global `index` is held out for validation.
pub(crate) fn is_validation(seed: u64, index: u64, test_fraction: f64) -> bool {
    let u = (splitmix64(splitmix64(seed) ^ index) >> 11) as f64 / (1u64 << 53) as f64;
    u < test_fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of SplittableRandom-style SplitMix64 seeded with 0: the generator
        // adds the golden gamma before mixing, so output n is splitmix64((n-1) * gamma).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn the_split_is_stable_and_near_the_fraction() {
        let first: Vec<bool> = (0..10_000).map(|i| is_validation(42, i, 0.2)).collect();
        let again: Vec<bool> = (0..10_000).map(|i| is_validation(42, i, 0.2)).collect();
        assert_eq!(first, again);
        let held = first.iter().filter(|v| **v).count();
        assert!((1800..2200).contains(&held), "{held}");
        let other: Vec<bool> = (0..10_000).map(|i| is_validation(7, i, 0.2)).collect();
        assert_ne!(first, other, "another seed, another split");
        // A larger fraction only adds rows to validation.
        assert!((0..10_000).all(|i| !is_validation(42, i, 0.2) || is_validation(42, i, 0.3)));
    }
}

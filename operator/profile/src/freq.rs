//! The most frequent values of a text or boolean column.
//!
//! Counts are exact while a column (within one unit of work, and after merging) has at most
//! [`EXACT_VALUES`] distinct values. Past that the counts move into a DataSketches
//! frequent-items sketch (Misra-Gries, 4096 counters): the values reported are then those
//! whose frequency exceeds the sketch's error (about 0.09 % of the column's non-null values),
//! with estimated counts that may exceed the true ones by at most that error.

use datasketches::frequencies::{ErrorType, FrequentItemsSketch};
use std::collections::HashMap;

/// Distinct values counted exactly before switching to the sketch.
pub(crate) const EXACT_VALUES: usize = 1000;

/// Counters of the frequent-items sketch (a power of two).
const SKETCH_COUNTERS: usize = 4096;

type Map = HashMap<Box<str>, u64, foldhash::fast::RandomState>;

#[derive(Debug)]
pub(crate) enum TopValues {
    Exact(Map),
    Sketch(Box<FrequentItemsSketch<String>>),
}

impl Default for TopValues {
    fn default() -> Self {
        TopValues::Exact(Map::default())
    }
}

impl TopValues {
    /// Counts `count` occurrences of `value`. Returns whether the value may be new, so that
    /// the caller feeds its distinct-count sketch only once per value while counts are exact.
    pub fn add(&mut self, value: &str, count: u64) -> bool {
        match self {
            TopValues::Exact(map) => {
                if let Some(c) = map.get_mut(value) {
                    *c += count;
                    return false;
                }
                map.insert(value.into(), count);
                if map.len() > EXACT_VALUES {
                    self.switch_to_sketch();
                }
                true
            }
            TopValues::Sketch(sketch) => {
                sketch.update_with_count_ref(value, count);
                true
            }
        }
    }

    fn switch_to_sketch(&mut self) {
        let mut sketch =
            FrequentItemsSketch::new(SKETCH_COUNTERS).expect("SKETCH_COUNTERS is a power of two");
        if let TopValues::Exact(map) = self {
            for (value, count) in map.drain() {
                sketch.update_with_count(value.into_string(), count);
            }
        }
        *self = TopValues::Sketch(Box::new(sketch));
    }

    pub fn merge(&mut self, other: TopValues) {
        match other {
            TopValues::Exact(map) => {
                for (value, count) in map {
                    self.add(&value, count);
                }
            }
            TopValues::Sketch(theirs) => {
                if let TopValues::Exact(_) = self {
                    self.switch_to_sketch();
                }
                if let TopValues::Sketch(ours) = self {
                    ours.merge(&theirs);
                }
            }
        }
    }

    /// The number of distinct values, while it is known exactly.
    pub fn exact_distinct(&self) -> Option<u64> {
        match self {
            TopValues::Exact(map) => Some(map.len() as u64),
            TopValues::Sketch(_) => None,
        }
    }

    /// The `n` most frequent values, most frequent first, ties in text order.
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = match self {
            TopValues::Exact(map) => map.iter().map(|(v, c)| (v.to_string(), *c)).collect(),
            TopValues::Sketch(sketch) => sketch
                .frequent_items(ErrorType::NoFalsePositives)
                .into_iter()
                .map(|row| (row.item().clone(), row.estimate()))
                .collect(),
        };
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_and_ordered_while_few() {
        let mut t = TopValues::default();
        for v in ["b", "a", "b", "c", "b", "a"] {
            t.add(v, 1);
        }
        let mut other = TopValues::default();
        other.add("c", 5);
        t.merge(other);
        assert_eq!(t.exact_distinct(), Some(3));
        let top = t.top(2);
        assert_eq!(top, vec![("c".to_string(), 6), ("b".to_string(), 3)]);
    }

    #[test]
    fn many_values_move_to_the_sketch_and_keep_the_heavy_ones() {
        let mut t = TopValues::default();
        for i in 0..20_000 {
            t.add(&format!("rare{i}"), 1);
            if i % 4 == 0 {
                t.add("heavy", 1);
            }
        }
        assert_eq!(t.exact_distinct(), None);
        let top = t.top(3);
        assert_eq!(top[0].0, "heavy");
        assert!(top[0].1 >= 5000 && top[0].1 <= 5000 + 25_000 / 1000);
    }

    #[test]
    fn add_reports_new_values_only_while_exact() {
        let mut t = TopValues::default();
        assert!(t.add("x", 1));
        assert!(!t.add("x", 1));
    }
}

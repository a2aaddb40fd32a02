//! Which files each worker of a sharded check takes: contiguous ranges of the listing, in
//! manifest order, balanced by bytes, the same on every worker given the same listing.

use std::ops::Range;

/// The files of each of `shards` workers. File `j` goes to the worker its middle byte falls
/// to, `floor(shards * (bytes before j + size_j / 2) / total bytes)`, so the ranges are
/// contiguous and each holds about `total / shards` bytes (a file larger than that makes its
/// neighbours' shares smaller, or empty). With no bytes at all, files are split by count.
pub(crate) fn split(sizes: &[u64], shards: usize) -> Vec<Range<usize>> {
    let shards = shards.max(1);
    let total: u128 = sizes.iter().map(|&s| u128::from(s)).sum();
    let mut before: u128 = 0;
    let mut ends = vec![0usize; shards];
    for (j, &size) in sizes.iter().enumerate() {
        let size = u128::from(size);
        let shard = if total == 0 {
            shards * j / sizes.len()
        } else {
            // u128: shards times a sum of u64 sizes cannot overflow it.
            (shards as u128 * (2 * before + size) / (2 * total)) as usize
        };
        before += size;
        ends[shard.min(shards - 1)] = j + 1;
    }
    // A shard with no files ends where the one before it does.
    for k in 1..shards {
        ends[k] = ends[k].max(ends[k - 1]);
    }
    (0..shards)
        .map(|k| if k == 0 { 0 } else { ends[k - 1] }..ends[k])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_files_are_shared_equally() {
        assert_eq!(split(&[10, 10, 10], 3), [0..1, 1..2, 2..3]);
        assert_eq!(split(&[1; 10], 2), [0..5, 5..10]);
    }

    #[test]
    fn ranges_are_balanced_by_bytes_not_by_count() {
        // The large file alone is half the bytes.
        assert_eq!(split(&[100, 25, 25, 25, 25], 2), [0..1, 1..5]);
        assert_eq!(split(&[1, 1, 1, 97], 2), [0..3, 3..4]);
    }

    #[test]
    fn more_workers_than_files_leave_some_with_nothing() {
        assert_eq!(split(&[5, 5], 3), [0..1, 1..1, 1..2]);
        assert_eq!(split(&[7], 4), [0..0, 0..0, 0..1, 1..1]);
        assert_eq!(split(&[], 3), [0..0, 0..0, 0..0]);
    }

    #[test]
    fn empty_files_are_split_by_count() {
        assert_eq!(split(&[0, 0, 0, 0], 2), [0..2, 2..4]);
    }

    #[test]
    fn the_ranges_cover_every_file_once_in_order() {
        let sizes: Vec<u64> = (0..97u64).map(|i| (i * 7919) % 1000).collect();
        for shards in 1..12 {
            let ranges = split(&sizes, shards);
            assert_eq!(ranges.len(), shards);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[shards - 1].end, sizes.len());
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let total: u64 = sizes.iter().sum();
            let largest = *sizes.iter().max().unwrap();
            for r in &ranges {
                let bytes: u64 = sizes[r.clone()].iter().sum();
                // Within one file of an equal share on each side.
                assert!(
                    bytes <= total / shards as u64 + 2 * largest,
                    "{shards}: {r:?}"
                );
            }
        }
    }
}

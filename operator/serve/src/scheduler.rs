//! The tokio runtime `ciclo serve` runs on (and the benchmark's bare ceiling with it, so the
//! two are compared on the same scheduler).
//!
//! On one core (a pod with a CPU limit of 1, a pinned process), a current-thread runtime:
//! the multi-threaded one has a single worker there anyway, and its cross-thread machinery
//! and LIFO slot cost more than they give. Measured with wrk on one pinned core, the same
//! binary alternating with itself (`ciclo serve`, `[1,30]` FP64 rows): at 1024 connections
//! the current-thread runtime answered 1.17–1.50x the requests (median of 4 pairs 1.26x) with
//! a p99 of 34–46 ms instead of 163–196 ms (the single worker's LIFO slot let fresh requests
//! overtake waiting ones); at 64 connections and at 1 the two were equal within the machine's
//! noise (medians 1.0x and 0.97x of 6 pairs).
//!
//! On more cores, the multi-threaded runtime with one worker per core. Either way large
//! batches are answered on the blocking pool (CPU work): no more threads there than cores
//! (tokio's default of 512 grew a thread per connection under load); how many wait is
//! bounded by `--max-concurrent-requests`.

/// The runtime for the cores this process may use (its CPU affinity and cgroup quota).
pub fn serving_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.max_blocking_threads(cores).enable_all().build()
}

"""Times Polars reading a parquet file and describing it: the peer of ciclo's profile.

Usage: polars_describe.py PATH [RUNS]. Prints each run's seconds, then `median <seconds>`.
Only read_parquet + describe() is timed, not Python's start-up or the import.
"""

import statistics
import sys
import time

import polars as pl


def main() -> None:
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pl.read_parquet(path).describe()
        times.append(time.perf_counter() - start)
        print(f"run {times[-1]:.3f} s")
    print(f"median {statistics.median(times):.3f}")


if __name__ == "__main__":
    main()

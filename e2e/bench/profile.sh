#!/usr/bin/env bash
# Profiling benchmark: ciclo's column profile (ciclo_profile::profile) against Polars'
# read_parquet(...).describe() on the same generated 10M-row x 10-column parquet file
# (5 float64, 3 int64, 1 categorical string, 1 boolean: see e2e/bench/src/lib.rs).
#
# Goal: ciclo takes <= 2 s and is faster than Polars. Both run alternately, one run at a time,
# after one warm-up run each (which also brings the file into the page cache); the medians
# are compared. Everything downloaded or generated is cached under
# ${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench: the venv (keyed by requirements.txt and the
# Python version) and the file (keyed by the generator's version and the row count).
#
# Environment: BENCH_RUNS (default 5), BENCH_ROWS (default 10000000), PYTHON (default
# python3), BENCH_CHECK=1 to exit 1 when the goal is not met.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench
runs=${BENCH_RUNS:-5}
rows=${BENCH_ROWS:-10000000}
python=${PYTHON:-python3}
mkdir -p "$cache/data"

log() { echo "bench: $*" >&2; }

# The Python peer, in a venv made once per set of pinned requirements.
venv=$cache/venv
key=$({ cat "$here/requirements.txt"; "$python" --version; } | sha256sum | cut -c1-16)
if [[ "$(cat "$venv/.requirements-key" 2>/dev/null)" != "$key" ]]; then
    log "making the Python venv in $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$key" >"$venv/.requirements-key"
fi

log "building ciclo-bench (release)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p ciclo-bench
bin=${CARGO_TARGET_DIR:-$root/target}/release

file=$cache/data/table-$("$bin/bench-gen" --version)-$rows.parquet
if [[ ! -f "$file" ]]; then
    log "generating $file"
    "$bin/bench-gen" "$file.tmp" "$rows"
    mv "$file.tmp" "$file"
fi

ciclo() { "$bin/bench-profile" "$file" 1 | awk '/^median/ {print $2}'; }
polars() { "$venv/bin/python" "$here/polars_describe.py" "$file" 1 | awk '/^median/ {print $2}'; }

log "warming up"
ciclo >/dev/null
polars >/dev/null
ciclo_times=()
polars_times=()
for ((i = 1; i <= runs; i++)); do
    ciclo_times+=("$(ciclo)")
    polars_times+=("$(polars)")
    log "run $i: ciclo ${ciclo_times[-1]} s, polars ${polars_times[-1]} s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
c=$(median "${ciclo_times[@]}")
p=$(median "${polars_times[@]}")
label=$(awk -v r="$rows" 'BEGIN {if (r % 1000000 == 0) print r / 1000000 "M"; else print r}')
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
verdict=$(awk -v c="$c" -v p="$p" 'BEGIN {print (c <= 2 && c < p) ? "met" : "NOT met"}')
printf 'profile %s x 10 parquet: ciclo median %.2f s | polars describe median %.2f s | ratio polars/ciclo %.2fx (goal: <= 2 s and faster: %s)\n' \
    "$label" "$c" "$p" "$(awk -v c="$c" -v p="$p" 'BEGIN {print p / c}')" "$verdict"
echo "machine: nproc $(nproc), ${cpu:-unknown CPU}; polars $("$venv/bin/python" -c 'import polars; print(polars.__version__)'); $runs runs each"
if [[ "${BENCH_CHECK:-0}" == 1 && "$verdict" != met ]]; then
    exit 1
fi

#!/usr/bin/env bash
# Snapshot benchmarks on a generated tree of csv files (>= 2 GiB, 32 files):
#   1. hashing throughput: `ciclo dataset id` (list + BLAKE3 of every file) against `b3sum`
#      (crates.io, pinned) on the same files — goal >= 0.8x b3sum's throughput;
#   2. an unchanged re-snapshot (`ciclo dataset snapshot --previous <id>`) against the first
#      snapshot of the tree (hash + profile + validate + write) — goal >= 50x faster;
#   3. peak memory (max RSS of the process) of the first snapshot — goal <= 256 MiB.
# Runs alternate between ciclo and its peer, after a warm-up that brings the tree into the
# page cache; medians are compared. The tree and b3sum are cached under
# ${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench, keyed by the generator version and b3sum's.
#
# Environment: BENCH_RUNS (default 5), BENCH_TREE_FILES (32), BENCH_TREE_MIB (2048).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench
runs=${BENCH_RUNS:-5}
files=${BENCH_TREE_FILES:-32}
tree_mib=${BENCH_TREE_MIB:-2048}
b3sum_version=1.8.7
mkdir -p "$cache/data"

log() { echo "bench: $*" >&2; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {print $*}"; }
# Seconds a command takes (its output discarded).
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    calc "$end - $start"
}
# Runs a command, its output to stdout, and writes its peak resident memory (KiB) to $1.
max_rss() {
    local out=$1
    shift
    python3 -c 'import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)' "$out" "$@"
}

b3sum=$cache/b3sum-$b3sum_version/bin/b3sum
if [[ ! -x "$b3sum" ]]; then
    log "installing b3sum $b3sum_version into $cache"
    cargo install --quiet --locked b3sum --version "$b3sum_version" --root "$cache/b3sum-$b3sum_version"
fi

log "building ciclo and ciclo-bench (release)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p ciclo -p ciclo-bench
bin=${CARGO_TARGET_DIR:-$root/target}/release

# Rows per file for the size asked: measured on a small sample of the same generator.
tree=$cache/data/tree-$("$bin/bench-gen" --version)-$files-$tree_mib
if [[ ! -f "$tree/.complete" ]]; then
    sample=$(mktemp -d)
    "$bin/bench-gen" --csv "$sample" 1 100000
    bytes_per_row=$(($(stat -c %s "$sample/part-0000.csv") / 100000))
    rm -rf "$sample"
    rows=$((tree_mib * 1024 * 1024 / files / bytes_per_row + 1))
    log "generating $tree ($files files x $rows rows)"
    rm -rf "$tree"
    "$bin/bench-gen" --csv "$tree" "$files" "$rows"
    touch "$tree/.complete"
fi
bytes=$(find "$tree" -name '*.csv' -printf '%s\n' | awk '{s+=$1} END {print s}')
gib=$(calc "$bytes / 1024 / 1024 / 1024")

# 1. Hashing.
ciclo_id() { "$bin/ciclo" dataset id --source "file://$tree" --include '*.csv'; }
b3() { "$b3sum" "$tree"/*.csv; }
log "warming up (page cache)"
ciclo_id >/dev/null
b3 >/dev/null
[[ "$(ciclo_id)" == *'"files":'"$files"* ]] || { log "ERROR: ciclo did not hash $files files"; exit 1; }
ct=()
bt=()
for ((i = 1; i <= runs; i++)); do
    ct+=("$(seconds ciclo_id)")
    bt+=("$(seconds b3)")
    log "hash run $i: ciclo ${ct[-1]} s, b3sum ${bt[-1]} s"
done
c=$(median "${ct[@]}")
b=$(median "${bt[@]}")

# 2 and 3. First snapshot (fresh artifact store each run) against an unchanged re-snapshot.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
first() {
    rm -rf "$work/artifacts"
    max_rss "$work/rss" "$bin/ciclo" dataset snapshot --source "file://$tree" \
        --include '*.csv' --artifacts "file://$work/artifacts" 2>/dev/null
}
id=$(first | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p')
[[ -n "$id" ]] || { log "ERROR: the first snapshot gave no version id"; exit 1; }
again() {
    "$bin/ciclo" dataset snapshot --source "file://$tree" --include '*.csv' \
        --artifacts "file://$work/artifacts" --previous "$id" 2>/dev/null
}
[[ "$(again)" == *'"outcome":"Unchanged"'* ]] || { log "ERROR: the re-snapshot was not Unchanged"; exit 1; }
ft=()
ut=()
rss=()
for ((i = 1; i <= 3; i++)); do
    ft+=("$(seconds first)")
    rss+=("$(cat "$work/rss")")
    ut+=("$(seconds again)")
    log "snapshot run $i: first ${ft[-1]} s (max RSS ${rss[-1]} KiB), unchanged ${ut[-1]} s"
done
for ((i = 4; i <= runs; i++)); do
    ut+=("$(seconds again)")
done
f=$(median "${ft[@]}")
u=$(median "${ut[@]}")
peak=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf 'hash %.2f GiB (%d csv files): ciclo median %.2f GiB/s | b3sum %s median %.2f GiB/s | ratio %.2fx (goal >= 0.8x)\n' \
    "$gib" "$files" "$(calc "$gib / $c")" "$b3sum_version" "$(calc "$gib / $b")" "$(calc "$b / $c")"
printf 'unchanged re-snapshot: first snapshot median %.2f s | unchanged median %.3f s | %.0fx faster (goal >= 50x)\n' \
    "$f" "$u" "$(calc "$f / $u")"
printf 'peak memory of the first snapshot of %.2f GiB: %.0f MiB (max of 3 runs; goal <= 256 MiB)\n' \
    "$gib" "$(calc "$peak / 1024")"

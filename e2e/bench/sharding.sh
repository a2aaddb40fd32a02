#!/usr/bin/env bash
# A sharded dataset check (`ciclo dataset snapshot --shards N`) of a generated tree of csv
# files (1 GiB, 32 files: `bench-gen --csv`, cached as snapshot.sh caches it) with 1, 2 and 4
# workers, beside the unsharded check (one worker, no --shards) the operator runs below
# spec.sharding's threshold:
#   1. time: the wall time of the whole check (first worker started to worker 0 done), each
#      worker's share (list, hash and profile its files), the hand-off (workers 1..N-1 write
#      their share), and worker 0's wait for the shares and its merge (merge the partial
#      profiles, write the version, delete the shares), from the timestamps of their log lines;
#   2. equality: the version id and profile.json of every run against the unsharded check's:
#      rows, counts, nulls, min/max, distinct counts and top values identical, mean and std to
#      1e-9, quantiles and histograms within the KLL sketches' rank error (operator/profile
#      sketch.rs: k = 200, datasketches' 99 % bound, plus 0.004 for its sampling, on each
#      side); the first difference is printed and the bench exits 1;
#   3. a cost model from those figures, T(N) = fixed + bytes x c / N + poll + merge(N): the
#      CPU per byte of hash + profile (c), a worker's fixed cost (a check of the same files
#      with one row each: start-up, opening the stores, listing, hand-off write), worker 0's
#      wait for the last share (it looks every second) and its merge, and the expected wall
#      time for N = 1, 2, 4, 8, 16 workers with a core each and a store that keeps up, beside
#      the times measured here (2 cores, shared by every worker and the S3 server, which
#      needs more CPU to serve the bytes than the check needs to hash and profile them).
# Each run is what the operator's Indexed Job runs (operator/controller/src/controllers/
# dataset/job.rs): the same binary with the same flags, in the same order, and the pods'
# environment (JOB_COMPLETION_INDEX, the source's keys under CICLO_SOURCE_ as its Secret gives
# them; the artifact store anonymous, as e2e/deploy sets it), the N workers started at once
# as host processes, as the process node (e2e/node) runs a Job's pods. The data and the
# artifact store are a SeaweedFS S3 server (e2e/objectstore's binary and settings) on
# 127.0.0.1, on ports and in a folder of its own, so the tests' shared store is left alone.
# S3 rather than file://, although the check reads both: pods read S3, a file:// source is
# hashed with direct local reads instead of streaming GETs, and the hand-off would be a local
# folder instead of PUT, LIST and GET against the store. Runs go round-robin over the worker
# counts after one warm-up each; medians of BENCH_RUNS.
#
# Environment: BENCH_RUNS (default 3), BENCH_TREE_FILES (32), BENCH_TREE_MIB (1024),
# BENCH_WORKERS ("1 2 4"; 1 first: the reference), BENCH_MODEL_WORKERS ("1 2 4 8 16"),
# BENCH_S3_PORT (18340; it and the next three ports, and each + 10000, must be free).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench
runs=${BENCH_RUNS:-3}
files=${BENCH_TREE_FILES:-32}
tree_mib=${BENCH_TREE_MIB:-1024}
read -r -a workers <<<"${BENCH_WORKERS:-1 2 4}"
model_workers=${BENCH_MODEL_WORKERS:-1 2 4 8 16}
s3_port=${BENCH_S3_PORT:-18340}
mkdir -p "$cache/data"

log() { echo "bench: $*" >&2; }
[[ "${workers[0]}" == 1 ]] || { log "ERROR: BENCH_WORKERS must start with 1 (the unsharded reference)"; exit 1; }

log "building ciclo and ciclo-bench (release)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p ciclo -p ciclo-bench
built=${CARGO_TARGET_DIR:-$root/target}/release
weed=$("$root/e2e/objectstore/build.sh")

# The tree, as snapshot.sh makes and caches it (the same key: one tree for both benches).
tree=$cache/data/tree-$("$built/bench-gen" --version)-$files-$tree_mib
if [[ ! -f "$tree/.complete" ]]; then
    sample=$(mktemp -d)
    "$built/bench-gen" --csv "$sample" 1 100000
    bytes_per_row=$(($(stat -c %s "$sample/part-0000.csv") / 100000))
    rm -rf "$sample"
    rows=$((tree_mib * 1024 * 1024 / files / bytes_per_row + 1))
    log "generating $tree ($files files x $rows rows)"
    rm -rf "$tree"
    "$built/bench-gen" --csv "$tree" "$files" "$rows"
    touch "$tree/.complete"
fi

work=$(mktemp -d)
weed_pid=
stop_store() {
    [[ -n "$weed_pid" ]] || return 0
    kill -TERM "$weed_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$weed_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$weed_pid" 2>/dev/null || true
    wait "$weed_pid" 2>/dev/null || true
    weed_pid=
}
trap 'stop_store; rm -rf "$work"' EXIT
# The binaries as built now: every run uses the same ones, whatever is rebuilt meanwhile.
bin=$work/bin
mkdir -p "$bin"
cp "$built/ciclo" "$built/bench-gen" "$bin/"

# The same tree with one row per file: what a check costs besides reading data.
"$bin/bench-gen" --csv "$work/tiny" "$files" 1

# The S3 server: up.sh's settings (one volume per bucket, 64 MB volumes, the free-space
# floor), its own ports and a fresh folder; stopped at the end.
ports=("$s3_port" $((s3_port + 1)) $((s3_port + 2)) $((s3_port + 3)))
for p in "${ports[@]}"; do
    for q in "$p" $((p + 10000)); do
        if ss -ltnH "sport = :$q" | grep -q .; then
            log "ERROR: port $q is taken (the S3 server here needs $s3_port to $((s3_port + 3)) and each + 10000; set BENCH_S3_PORT)"
            exit 1
        fi
    done
done
endpoint=http://127.0.0.1:$s3_port
s3() { curl -sf --noproxy '*' --max-time 120 "$@"; }
mkdir -p "$work/s3/data" "$work/s3/log"
WEED_MASTER_VOLUME_GROWTH_COPY_1=1 "$weed" -logdir="$work/s3/log" server -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -dir="$work/s3/data" -master.port="${ports[1]}" -volume.port="${ports[2]}" -filer -filer.port="${ports[3]}" \
    -s3 -s3.port="$s3_port" -metricsPort=0 -master.volumeSizeLimitMB=64 -volume.max=0 \
    -volume.minFreeSpace=512MiB >"$work/s3/weed.log" 2>&1 </dev/null &
weed_pid=$!
weed_version=$("$weed" version 2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+/) {print $i; exit}}')
for i in $(seq 1 300); do
    curl -s -o /dev/null --noproxy '*' --max-time 2 "$endpoint/" && break
    kill -0 "$weed_pid" 2>/dev/null || { log "ERROR: weed exited:"; tail -n 20 "$work/s3/weed.log" >&2; exit 1; }
    ((i < 300)) || { log "ERROR: S3 did not answer on $endpoint within 60 s:"; tail -n 20 "$work/s3/weed.log" >&2; exit 1; }
    sleep 0.2
done
# A bucket's first write makes its first volume: wait until each takes writes.
for bucket in ciclo-bench ciclo-artifacts; do
    s3 -o /dev/null -X PUT "$endpoint/$bucket"
    for i in $(seq 1 300); do
        s3 -o /dev/null -X PUT --data-binary probe "$endpoint/$bucket/.probe" &&
            s3 -o /dev/null -X DELETE "$endpoint/$bucket/.probe" && break
        ((i < 300)) || { log "ERROR: bucket $bucket took no write within 60 s"; exit 1; }
        sleep 0.2
    done
done
# Uploaded as the tests put objects: one plain PUT each (e2e/tests/src/s3.rs).
log "uploading the trees to $endpoint (SeaweedFS ${weed_version:-?})"
for f in "$tree"/*.csv; do s3 -o /dev/null -T "$f" "$endpoint/ciclo-bench/data/${f##*/}"; done
for f in "$work/tiny"/*.csv; do s3 -o /dev/null -T "$f" "$endpoint/ciclo-bench/tiny/${f##*/}"; done

# Starts workers FIRST..LAST of a check of N at once with the pods' environment, each as
# a host process; waits for them; writes OUT/times: per worker its start and end (epoch
# seconds), CPU (user, system; s), peak RSS (KiB) and exit code, then the S3 server's CPU and
# the whole machine's (s), so that what else ran meanwhile shows.
cat >"$work/launch.py" <<'PY'
import os, subprocess, sys, time

out, n, first, last, store = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
split = sys.argv.index("--")
pod_env = dict(kv.split("=", 1) for kv in sys.argv[6:split])
command = sys.argv[split + 1:]

def store_cpu():
    with open(f"/proc/{store}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def machine_cpu():
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

before, machine_before = store_cpu(), machine_cpu()
running = {}
for i in range(first, last + 1):
    env = dict(pod_env)
    if n > 1:
        # What the Job controller gives each pod of an Indexed Job.
        env["JOB_COMPLETION_INDEX"] = str(i)
    with open(f"{out}/{i}.out", "w") as stdout, open(f"{out}/{i}.log", "w") as stderr:
        started = time.time()
        running[subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr).pid] = (i, started)
lines, failed = [], False
while running:
    pid, status, usage = os.wait4(-1, 0)
    ended = time.time()
    i, started = running.pop(pid)
    code = os.waitstatus_to_exitcode(status)
    failed |= code != 0
    lines.append((i, f"{i} {started:.6f} {ended:.6f} {usage.ru_utime:.3f} {usage.ru_stime:.3f} {usage.ru_maxrss} {code}"))
with open(f"{out}/times", "w") as f:
    f.writelines(line + "\n" for _, line in sorted(lines))
    f.write(f"store {store_cpu() - before:.3f}\n")
    f.write(f"machine {machine_cpu() - machine_before:.3f}\n")
sys.exit(1 if failed else 0)
PY

# check KIND N TAG [FIRST LAST]: workers FIRST..LAST (all by default) of a check of tree KIND
# (data or tiny) with N workers, into $work/runs/TAG; then the version's profile.json.
check() {
    local kind=$1 n=$2 tag=$3 first=${4:-0} last=${5:-$(($2 - 1))}
    local out=$work/runs/$tag name=$kind-$n
    mkdir -p "$out"
    # As job.rs builds them, in its order; no --previous (a first check, or one whose every
    # file changed: each byte read), no schema, drift or format (by extension).
    local args=(dataset snapshot --source "s3://ciclo-bench/$kind/" --source-endpoint "$endpoint"
        --source-region us-east-1 --include '**/*.csv' --artifacts "s3://ciclo-artifacts/bench/datasets/$name"
        --artifacts-endpoint "$endpoint" --artifacts-region us-east-1
        --source-force-path-style --artifacts-force-path-style)
    if ((n > 1)); then args+=(--shards "$n" --shard-dir "$name-check-$tag"); fi
    if ! python3 "$work/launch.py" "$out" "$n" "$first" "$last" "$weed_pid" \
        PATH=/usr/bin:/bin CICLO_SOURCE_AWS_ACCESS_KEY_ID=ciclo CICLO_SOURCE_AWS_SECRET_ACCESS_KEY=ciclo-secret \
        -- "$bin/ciclo" "${args[@]}"; then
        log "ERROR: a worker of $tag failed:"
        tail -n 5 "$out"/*.out "$out"/*.log >&2
        exit 1
    fi
    if ((first == 0)); then
        local id
        id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$out/0.out")
        [[ -n "$id" ]] || { log "ERROR: $tag gave no version id: $(cat "$out/0.out")"; exit 1; }
        s3 -o "$out/profile.json" "$endpoint/ciclo-artifacts/bench/datasets/$name/$id/profile.json"
    fi
}

# The fixed costs first (they are small), then one warm-up per worker count: the server's
# files into the page cache, and for N > 1 workers 1..N-1 first, their shares' sizes, then
# worker 0 alone, whose wait is then only reading the shares (no share is late).
for ((r = 1; r <= runs; r++)); do
    for n in "${workers[@]}"; do check tiny "$n" "tiny-$n-r$r"; done
done
for n in "${workers[@]}"; do
    log "warm-up: $n worker(s)"
    if ((n == 1)); then
        check data 1 warm-1
        continue
    fi
    check data "$n" "warm-$n" 1 $((n - 1))
    mv "$work/runs/warm-$n/times" "$work/runs/warm-$n/times.others"
    s3 "$endpoint/ciclo-artifacts?list-type=2&prefix=bench/datasets/data-$n/shards/" |
        { grep -o '<Size>[0-9]*</Size>' || true; } | tr -dc '0-9\n' >"$work/runs/warm-$n/shares"
    check data "$n" "warm-$n" 0 0
    cat "$work/runs/warm-$n/times.others" "$work/runs/warm-$n/times" | grep -Ev '^(store|machine)' >"$work/runs/warm-$n/times.all"
done
# The S3 server alone, the floor it sets here: every file read once with curl, one at a time.
store_cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$weed_pid/stat"; }
before=$(store_cpu)
start=$(date +%s.%N)
for f in "$tree"/*.csv; do s3 -o /dev/null "$endpoint/ciclo-bench/data/${f##*/}"; done
echo "$(awk "BEGIN {print $(date +%s.%N) - $start}") $(awk "BEGIN {print $(store_cpu) - $before}")" >"$work/runs/curl"
for ((r = 1; r <= runs; r++)); do
    for n in "${workers[@]}"; do
        check data "$n" "data-$n-r$r"
        log "run $r, $n worker(s): $(awk '$1 ~ /^[0-9]+$/ {if (!s || $2 < s) s = $2; if ($3 > e) e = $3} END {printf "%.2f s", e - s}' "$work/runs/data-$n-r$r/times")"
    done
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
python3 - "$work/runs" "$runs" "$model_workers" "${weed_version:-?}" "${workers[@]}" <<'PY'
"""The table, the equality of every run with the unsharded reference, and the cost model."""
import base64, bisect, calendar, json, os, re, statistics, struct, sys

runs_dir, runs, model = sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3].split()]
weed_version, counts = sys.argv[4], [int(n) for n in sys.argv[5:]]
GIB = 1 << 30
POLL = 1.0  # operator/snapshot/src/shard/handoff.rs: worker 0 looks for shares every second
SAMPLING = 0.004  # operator/profile/src/sketch.rs: the sampler's rank error, at most


def epoch(stamp):
    m = re.fullmatch(r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z", stamp)
    whole = calendar.timegm(tuple(int(g) for g in m.groups()[:6]))
    frac = m.group(7) or "0"
    return whole + int(frac) / 10 ** len(frac)


MARKS = {
    "listed": "listed and hashed",  # one worker: hashing done, profiling starts
    "share": "hashed and profiled this share",
    "merged": "merged the shares' manifests",  # worker 0: every share read
}


def load(tag, times="times"):
    """A run: per worker start, end, CPU, peak RSS, summary and the times of its log lines."""
    d = os.path.join(runs_dir, tag)
    run = {"workers": {}, "dir": d}
    for line in open(os.path.join(d, times)):
        f = line.split()
        if f[0] in ("store", "machine"):
            run[f[0]] = float(f[1])
            continue
        i = int(f[0])
        w = {"start": float(f[1]), "end": float(f[2]), "cpu": float(f[3]) + float(f[4]),
             "rss": int(f[5]) / 1024, "marks": {}}
        for entry in open(os.path.join(d, f"{i}.log"), errors="replace"):
            m = re.match(r"(\S+Z)\s+\w+\s+\S+: (.*)", entry)
            for key, text in MARKS.items():
                if m and m.group(2).startswith(text):
                    w["marks"][key] = epoch(m.group(1))
        out = open(os.path.join(d, f"{i}.out")).read().strip()
        w["summary"] = json.loads(out.splitlines()[-1])
        run["workers"][i] = w
    ws = run["workers"].values()
    run["wall"] = max(w["end"] for w in ws) - min(w["start"] for w in ws)
    run["cpu"] = sum(w["cpu"] for w in ws)
    run["rss"] = max(w["rss"] for w in ws)
    if "machine" in run:
        # Cores busy with anything but the workers and the S3 server, on average.
        run["others"] = max(run["machine"] - run["cpu"] - run["store"], 0.0) / run["wall"]
    return run


def mark(w, key, tag):
    if key not in w["marks"]:
        sys.exit(f"bench: ERROR: {tag}: no log line {MARKS[key]!r} (RUST_LOG at info?)")
    return w["marks"][key]


def phases(run, n, tag):
    """Share, hand-off, shares-in-after and merge times of one run."""
    ws = run["workers"]
    if n == 1:
        w = ws[0]
        listed = mark(w, "listed", tag)
        return {"share": [w["end"] - w["start"]], "hash": listed - w["start"], "profile": w["end"] - listed}
    share_end = {i: mark(w, "share", tag) for i, w in ws.items()}
    merged = mark(ws[0], "merged", tag)
    others_done = max(w["end"] for i, w in ws.items() if i > 0)
    return {
        "share": [share_end[i] - ws[i]["start"] for i in sorted(ws)],
        "handoff": [ws[i]["end"] - share_end[i] for i in ws if i > 0],
        "seen": merged - max(others_done, share_end[0]),
        "merge": ws[0]["end"] - merged,
    }


med = statistics.median

# --- KLL sketches (datasketches' compact serialization, as profile.json keeps them) ---

class Kll:
    def __init__(self, text):
        b = base64.b64decode(text)
        flags, k = b[3], struct.unpack_from("<H", b, 4)[0]
        if flags & 1:  # empty
            self.min_k, items = k, []
        elif flags & 4:  # one item
            self.min_k, items = k, [(struct.unpack_from("<d", b, 8)[0], 1)]
        else:
            n, self.min_k, levels = struct.unpack_from("<QHB", b, 8)
            offsets = struct.unpack_from(f"<{levels}I", b, 20)
            at = 20 + 4 * levels + 16  # the offsets, then min and max
            values = struct.unpack_from(f"<{(len(b) - at) // 8}d", b, at)
            ends = [o - offsets[0] for o in offsets[1:]] + [len(values)]
            items, start = [], 0
            for level, end in enumerate(ends):
                items += [(v, 1 << level) for v in values[start:end]]
                start = end
            if sum(w for _, w in items) != n:
                sys.exit("bench: ERROR: a KLL sketch did not decode (its weights do not add up to n)")
        items.sort()
        self.values = [v for v, _ in items]
        self.cum = [0]
        for _, w in items:
            self.cum.append(self.cum[-1] + w)

    def error(self):
        """datasketches' normalized rank error at 99 % confidence, and the sampler's."""
        return 2.296 / self.min_k ** 0.9723 + SAMPLING

    def ranks(self, v):
        """The fraction of the weight below v, and at or below it."""
        total = self.cum[-1]
        return (self.cum[bisect.bisect_left(self.values, v)] / total,
                self.cum[bisect.bisect_right(self.values, v)] / total)


def compare(ref, got):
    """(first difference or None, largest rank gap seen, its bound, which parts differed)."""
    worst, bound, inexact = 0.0, 0.0, set()
    if ref["rows"] != got["rows"]:
        return f"rows {got['rows']} (unsharded: {ref['rows']})", 0, 0, inexact
    if [c["name"] for c in ref["columns"]] != [c["name"] for c in got["columns"]]:
        return "other columns", 0, 0, inexact
    for a, b in zip(ref["columns"], got["columns"]):
        name = a["name"]
        for field in ("type", "count", "nulls", "min", "max", "distinct"):
            if a.get(field) != b.get(field):
                return f"column {name}: {field} {b.get(field)!r} (unsharded: {a.get(field)!r})", 0, 0, inexact
        ta, tb = a.get("topValues", []), b.get("topValues", [])
        for k in range(max(len(ta), len(tb))):
            x, y = ta[k] if k < len(ta) else None, tb[k] if k < len(tb) else None
            if x != y:
                return f"column {name}: top value {k + 1} {y} (unsharded: {x})", 0, 0, inexact
        # Sums in another order: equal to rounding (against the spread, for a mean near 0).
        scale = max(abs(a.get("mean") or 0), a.get("std") or 0)
        for field in ("mean", "std"):
            x, y = a.get(field), b.get(field)
            if x != y:
                inexact.add("moments")
                if x is None or y is None or abs(x - y) > 1e-9 * max(abs(x), abs(y), scale):
                    return f"column {name}: {field} {y!r} (unsharded: {x!r})", 0, 0, inexact
        if a.get("quantiles") != b.get("quantiles") or a.get("histogram") != b.get("histogram"):
            inexact.add("sketches")
        if "kllSketch" not in a and "kllSketch" not in b:
            continue
        if "kllSketch" not in a or "kllSketch" not in b:
            return f"column {name}: a quantile sketch on one side only", 0, 0, inexact
        ka, kb = Kll(a["kllSketch"]), Kll(b["kllSketch"])
        gap_bound = ka.error() + kb.error()
        bound = max(bound, gap_bound)
        # Each side's quantile, ranked in the other side's sketch: within both errors of q.
        for (qa, qb) in zip(a.get("quantiles", []), b.get("quantiles", [])):
            if qa["q"] != qb["q"]:
                return f"column {name}: quantiles at {qb['q']} (unsharded: {qa['q']})", 0, 0, inexact
            q = qa["q"]
            for sketch, value, side in ((ka, qb["value"], "sharded"), (kb, qa["value"], "unsharded")):
                lo, hi = sketch.ranks(value)
                gap = max(0.0, lo - q, q - hi)
                worst = max(worst, gap)
                if gap > gap_bound:
                    return (f"column {name}: the {side} quantile {q} is {value}, of rank [{lo:.4f}, {hi:.4f}] "
                            f"in the other sketch: {gap:.4f} off, over the bound {gap_bound:.4f}"), worst, bound, inexact
        # Histograms (counts read from the sketches) over the same edges: cumulative counts
        # within both errors of each other.
        ha, hb = a.get("histogram"), b.get("histogram")
        if (ha is None) != (hb is None) or (ha and ha["edges"] != hb["edges"]):
            return f"column {name}: histogram edges differ", worst, bound, inexact
        if ha:
            ca = cb = 0
            for x, y in zip(ha["counts"], hb["counts"]):
                ca, cb = ca + x, cb + y
                if abs(ca - cb) > gap_bound * a["count"] + 1:
                    return f"column {name}: histogram counts {hb['counts']} (unsharded: {ha['counts']})", worst, bound, inexact
                worst = max(worst, abs(ca - cb) / max(a["count"], 1))
    return None, worst, bound, inexact


# --- the runs ---

failed = False
tiny = {n: [load(f"tiny-{n}-r{r}") for r in range(1, runs + 1)] for n in counts}
data = {n: [load(f"data-{n}-r{r}") for r in range(1, runs + 1)] for n in counts}
ph = {n: [phases(run, n, f"data-{n}-r{r + 1}") for r, run in enumerate(data[n])] for n in counts}
reference = json.load(open(os.path.join(runs_dir, "data-1-r1", "profile.json")))
ref_summary = data[1][0]["workers"][0]["summary"]
ref_id = ref_summary["id"]
rows, nbytes, nfiles = ref_summary["rows"], ref_summary["bytes"], ref_summary["files"]
gib = nbytes / GIB

results = {}
for n in counts:
    verdict, worst, bound, inexact = None, 0.0, 0.0, set()
    for r, run in enumerate(data[n], 1):
        s = run["workers"][0]["summary"]
        outcomes = [w["summary"]["outcome"] for i, w in run["workers"].items() if i > 0]
        if s.get("id") != ref_id:
            verdict = f"version id {s.get('id')} in run {r} (unsharded: {ref_id})"
        elif (s["rows"], s["files"], s["bytes"], s["outcome"]) != (rows, nfiles, nbytes, ref_summary["outcome"]):
            verdict = f"run {r}: rows, files, bytes, outcome {s['rows']}, {s['files']}, {s['bytes']}, {s['outcome']}"
        elif any(o != "Part" for o in outcomes):
            verdict = f"run {r}: workers 1..{n - 1} reported {outcomes}, not Part"
        else:
            got = json.load(open(os.path.join(run["dir"], "profile.json")))
            diff, w, b, parts = compare(reference, got)
            verdict = diff and f"run {r}: {diff}"
            worst, bound, inexact = max(worst, w), max(bound, b), inexact | parts
        if verdict:
            break
    if verdict:
        failed = True
        results[n] = f"DIFFERENT: {verdict}"
    else:
        results[n] = "identical"
        if "moments" in inexact:
            results[n] += "; mean, std to 1e-9"
        if "sketches" in inexact:
            results[n] += f"; quantiles within bound (rank gap {worst:.4f} <= {bound:.4f})"
        if n == 1:
            results[n] = f"version {ref_id[:12]}..., the reference" + (f" (runs: {results[n]})" if runs > 1 else "")

print(f"sharded check of {gib:.2f} GiB ({nfiles} csv files, {rows / 1e6:.1f}M rows) read from S3 "
      f"(SeaweedFS {weed_version} on 127.0.0.1), the workers as concurrent processes; medians of {runs} runs")
print(f"{'workers':<7} {'wall':>8}  {'share of each worker':<24} {'hand-off':>8} {'shares in':>9} {'merge':>7} "
      f"{'CPU workers':>11} {'CPU S3':>7} {'others':>6} {'peak RSS':>9}  equality with 1 worker")
measured = {}
for n in counts:
    wall = med(r["wall"] for r in data[n])
    measured[n] = wall
    cpu, store = med(r["cpu"] for r in data[n]), med(r["store"] for r in data[n])
    rss = med(r["rss"] for r in data[n])
    others = med(r["others"] for r in data[n])
    if n == 1:
        share = f"hash {med(p['hash'] for p in ph[n]):.1f} + profile {med(p['profile'] for p in ph[n]):.1f} s"
        handoff = seen = merge = "-"
    else:
        per = [med(p["share"][i] for p in ph[n]) for i in range(n)]
        share = " ".join(f"{s:.1f}" for s in per) + " s"
        handoff = f"{med(h for p in ph[n] for h in p['handoff']):.2f} s"
        seen = f"{med(p['seen'] for p in ph[n]):.2f} s"
        merge = f"{med(p['merge'] for p in ph[n]):.2f} s"
    print(f"{n:<7} {wall:>6.2f} s  {share:<24} {handoff:>8} {seen:>9} {merge:>7} {cpu:>9.1f} s {store:>5.1f} s "
          f"{others:>6.2f} {rss:>5.0f} MiB  {results[n]}")

# --- the cost model ---
tiny_one = med(r["wall"] for r in tiny[1])
sharded = [n for n in counts if n > 1]
# A worker's fixed cost in a sharded check: start to end of workers 1..N-1 on the 1-row tree
# (start-up, opening the stores, listing, reading its 1-row files, writing its share).
fixed = med(w["end"] - w["start"] for n in sharded for r in tiny[n] for i, w in r["workers"].items() if i > 0) if sharded else tiny_one
c = (med(r["cpu"] for r in data[1]) - med(r["cpu"] for r in tiny[1])) / gib
s = (med(r["store"] for r in data[1]) - med(r["store"] for r in tiny[1])) / gib
# Worker 0 once every share is there: reading the shares (from the warm-up, where they were
# all there before it looked) and merging + writing the version (medians of the runs); the
# wait for the last share beyond reading it is the poll.
points, share_kib, polls = [], {}, []
for n in sharded:
    warm = load(f"warm-{n}", "times.all")
    w0 = warm["workers"][0]
    read = mark(w0, "merged", f"warm-{n}") - mark(w0, "share", f"warm-{n}")
    points.append((n - 1, read + med(p["merge"] for p in ph[n])))
    polls += [min(max(p["seen"] - read, 0.0), POLL) for p in ph[n]]
    sizes = [int(x) for x in open(os.path.join(runs_dir, f"warm-{n}", "shares")).read().split()]
    share_kib[n] = sum(sizes) / max(len(sizes), 1) / 1024
poll = med(polls) if polls else POLL / 2
if len(points) >= 2:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    m1 = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    m0 = my - m1 * mx
    if m1 < 0:  # no growth with N above the noise: a constant
        m0, m1 = my, 0.0
elif points:
    m0, m1 = 0.0, points[0][1] / points[0][0]
else:
    m0 = m1 = 0.0


def expected(n):
    if n == 1:
        return tiny_one + gib * c
    return fixed + gib * c / n + poll + m0 + m1 * (n - 1)


print("cost model, a core per worker and a store that keeps up: T(1) = fixed(1) + bytes x c, "
      "T(N) = fixed + bytes x c / N + poll + merge(N)")
print(f"  c                  {c:.2f} s/GiB of CPU: hash + profile, a worker's user + system time over the bytes "
      f"(less the 1-row tree's)")
print(f"  fixed(1)           {tiny_one:.2f} s: the unsharded check of the same {nfiles} files with 1 row each "
      f"(start-up, listing, 2 GETs a file, the version written)")
if sharded:
    kib = ", ".join(f"{share_kib[n]:.0f} KiB at N = {n}" for n in sharded)
    print(f"  fixed              {fixed:.2f} s: a worker of a sharded check of the 1-row files, its share written")
    print(f"  poll               {poll:.2f} s: worker 0 sees the last share up to {POLL:.0f} s late (it looks every "
          f"{POLL:.0f} s); the median here, where the shares end together")
    print(f"  merge(N)           {m0:.3f} + {m1:.3f} x (N - 1) s: read the shares, merge the partial profiles, write "
          f"the version (fitted over N = {', '.join(map(str, sharded))}; a share is {kib}: sketches and manifest "
          f"entries, not data)")
curl_wall, curl_cpu = (float(x) for x in open(os.path.join(runs_dir, "curl")).read().split())
print(f"  S3 server          {s:.2f} s/GiB of CPU to serve the check's reads (hash and profile each read every byte "
      f"once; curl reading every file once: {gib / curl_wall:.2f} GiB/s, {curl_cpu / gib:.2f} s/GiB of the server's CPU); "
      f"not in the model: in a cluster the store is elsewhere")
print(f"  {'N':>3}  {'expected, N cores':>17}  {'measured here':>13}")
for n in sorted(set(model) | set(counts)):
    here = f"{measured[n]:.2f} s" if n in measured else "-"
    print(f"  {n:>3}  {expected(n):>15.2f} s  {here:>13}")
cores = os.cpu_count()
busy = med(r["cpu"] + r["store"] for r in data[1])
print(f"  here: the workers and the S3 server share {cores} cores; one check needs {busy:.1f} s of CPU "
      f"({med(r['cpu'] for r in data[1]):.1f} s the worker, {med(r['store'] for r in data[1]):.1f} s the server), "
      f"so it takes at least {busy / cores:.2f} s whatever N;")
print(f"  1 worker took {measured[1]:.2f} s ({busy / measured[1]:.2f} of {cores} cores busy): more workers can only "
      f"come closer to that floor, the server's reads being most of it, and {max(counts)} workers share {cores} cores")
noisy = [n for n in counts if med(r["others"] for r in data[n]) > 0.1]
if noisy:
    print(f"  NOTE: other processes kept more than 0.1 cores busy during the runs of N = {', '.join(map(str, noisy))} "
          f"(column others): those times are not clean")
sys.exit(1 if failed else 0)
PY

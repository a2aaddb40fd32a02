#!/usr/bin/env bash
# Serving benchmark: `ciclo serve` against Seldon's MLServer (+ mlserver-sklearn), both
# serving a binary logistic regression over the Open Inference Protocol v2 (REST), on the
# same machine in the same invocation.
#
# The task is the same, the libraries are not: ciclo serves the model.json that `ciclo train`
# fits (linfa) on a generated table of 8 float features (`bench-load csv`), through a dataset
# snapshot like a TrainingRun; MLServer serves a scikit-learn LogisticRegression fitted on the
# same csv file (joblib, model-settings.json). Both get the same request bodies: one `input`
# tensor [rows, 8] FP64 asking for the `predict` output, of 1 and of 100 rows.
#
# For each server, in each of BENCH_RUNS rounds (the order alternates): cold start (process
# start to 200 from /v2/models/logreg/ready), then a closed loop (`bench-load run`, one
# thread, keep-alive connections) at each concurrency and batch size for BENCH_SECONDS after
# a warm-up, then the resident memory of the server's processes. Medians are printed, with a
# ratio ciclo/MLServer. The server is pinned to BENCH_SERVER_CPUS and the load generator to
# BENCH_LOAD_CPUS (default: one core each), so neither steals the other's core.
#
# MLServer is installed once into a venv under ${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench,
# keyed by requirements-serve.txt and the Python version. If it cannot be installed or
# started, ciclo's figures are still printed, with the reason in MLServer's column.
#
# Environment: BENCH_RUNS (3), BENCH_SECONDS (10), BENCH_WARMUP (2), BENCH_CONCURRENCY
# ("1 16"), BENCH_BATCHES ("1 100"), BENCH_TRAIN_ROWS (10000), BENCH_SERVER_CPUS (0),
# BENCH_LOAD_CPUS (1), BENCH_MLSERVER_WORKERS (0: inference in MLServer's own process, its
# fastest setting on one core; MLServer's default is 1), PYTHON (python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench
runs=${BENCH_RUNS:-3}
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
read -ra concurrencies <<<"${BENCH_CONCURRENCY:-1 16}"
read -ra batches <<<"${BENCH_BATCHES:-1 100}"
train_rows=${BENCH_TRAIN_ROWS:-10000}
server_cpus=${BENCH_SERVER_CPUS:-0}
load_cpus=${BENCH_LOAD_CPUS:-1}
mlserver_workers=${BENCH_MLSERVER_WORKERS:-0}
python=${PYTHON:-python3}
model=logreg
# shellcheck source=serve-harness.sh
. "$here/serve-harness.sh"

log "building ciclo and ciclo-bench (release)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p ciclo -p ciclo-bench
bin=${CARGO_TARGET_DIR:-$root/target}/release

# The models: one table, one ciclo train through a snapshot, one scikit-learn fit.
mkdir -p "$work/data" "$work/mlserver/$model"
"$bin/bench-load" csv "$work/data/train.csv" "$train_rows"
for b in "${batches[@]}"; do
    "$bin/bench-load" body "$b" >"$work/body-$b.json"
done
snapshot=$("$bin/ciclo" dataset snapshot --source "file://$work/data" --include '*.csv' \
    --artifacts "file://$work/artifacts" 2>"$work/snapshot.log")
version=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' <<<"$snapshot")
[[ -n "$version" ]] || { log "ERROR: the snapshot gave no version: $snapshot"; exit 1; }
features='["f1","f2","f3","f4","f5","f6","f7","f8"]'
trained=$("$bin/ciclo" train --dataset "file://$work/data" \
    --manifest "file://$work/artifacts/$version/manifest.json" --version "$version" \
    --output "file://$work/model" 2>"$work/train.log" \
    --trainer '{"algorithm": "LogisticRegression", "target": "label", "features": '"$features"'}')
digest=$(sed -n 's/.*"digest":"\(blake3:[0-9a-f]*\)".*/\1/p' <<<"$trained")
[[ -n "$digest" ]] || { log "ERROR: ciclo train failed: $trained"; exit 1; }
accuracy=$(sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p' <<<"$trained")
if [[ -z "$peer" ]]; then
    if ! "$venv/bin/python" - "$work/data/train.csv" "$work/mlserver/$model/model.joblib" \
        >"$work/sklearn.log" 2>&1 <<'EOF'; then
import sys
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

table = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
fitted = LogisticRegression().fit(table[:, :8], table[:, 8].astype(np.int64))
joblib.dump(fitted, sys.argv[2])
EOF
        peer="n/a (the scikit-learn fit failed: $(tail -1 "$work/sklearn.log"))"
    fi
    cat >"$work/mlserver/$model/model-settings.json" <<EOF
{"name": "$model", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}
EOF
fi

# Starts a server in a process group of its own, pinned to the server's cores, and waits for
# its model to be ready. Sets pid, url and cold (seconds from the start to ready).
start() {
    local since ports
    port=$(free_port)
    url=http://127.0.0.1:$port
    since=$(date +%s%N)
    case $1 in
    ciclo)
        setsid taskset -c "$server_cpus" "$bin/ciclo" serve --model-uri "file://$work/model/model.json" \
            --model-digest "$digest" --model-name "$model" --port "$port" --drain-seconds 0 \
            >>"$work/ciclo.log" 2>&1 &
        ;;
    mlserver)
        # Every listener on loopback (MLServer's default is 0.0.0.0 on fixed ports), and no
        # access log (MLServer's default writes a line per request; ciclo writes none).
        ports=("$(free_port)" "$(free_port)")
        (cd "$work" && exec env MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT="$port" \
            MLSERVER_GRPC_PORT="${ports[0]}" MLSERVER_METRICS_PORT="${ports[1]}" \
            MLSERVER_METRICS_DIR="$work/mlserver-metrics" MLSERVER_DEBUG=false \
            MLSERVER_PARALLEL_WORKERS="$mlserver_workers" \
            setsid taskset -c "$server_cpus" "$venv/bin/mlserver" start "$work/mlserver") \
            >>"$work/mlserver.log" 2>&1 &
        ;;
    esac
    pid=$!
    running+=("$pid")
    cold=$("$bin/bench-load" ready "$url/v2/models/$model/ready" "$since" "$pid")
}


# KiB summed over the processes of the server's group: VmRSS (now) or VmHWM (peak).
memory() {
    local p kib total=0
    for p in $(ps -o pid= --sid "$pid"); do
        kib=$(awk -v f="$1:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# One round of one server. Figures are appended to the arrays; returns 1 on any failure
# (errexit does not hold in a function called from `if`: every step is checked).
declare -A rps p50 p99 colds rss hwm
measure() {
    local server=$1 b c out r m n
    start "$server" || { stop; return 1; }
    colds[$server]+=" $cold"
    if [[ ! -s "$work/$server-predict.json" ]]; then
        curl -sf -H 'Content-Type: application/json' --data-binary "@$work/body-${batches[-1]}.json" \
            "$url/v2/models/$model/infer" >"$work/$server-predict.json" || { stop; return 1; }
    fi
    for b in "${batches[@]}"; do
        for c in "${concurrencies[@]}"; do
            out=$(taskset -c "$load_cpus" "$bin/bench-load" run "$url/v2/models/$model/infer" \
                "$work/body-$b.json" "$c" "$seconds" "$warmup") || { stop; return 1; }
            read -r _ _ _ r _ m _ n <<<"$out"
            rps[$server,$b,$c]+=" $r"
            p50[$server,$b,$c]+=" $m"
            p99[$server,$b,$c]+=" $n"
            log "  $server batch $b x $c: $out"
        done
    done
    rss[$server]+=" $(memory VmRSS)"
    hwm[$server]+=" $(memory VmHWM)"
    log "  $server: cold start $cold s, RSS after load $(memory VmRSS) KiB"
    stop
}

servers=(ciclo)
[[ -n "$peer" ]] || servers+=(mlserver)
for ((i = 1; i <= runs; i++)); do
    log "round $i of $runs"
    order=("${servers[@]}")
    if ((i % 2 == 0 && ${#servers[@]} == 2)); then
        order=(mlserver ciclo)
    fi
    for s in "${order[@]}"; do
        if measure "$s"; then
            continue
        fi
        if [[ $s == ciclo ]]; then
            log "ERROR: ciclo serve failed in round $i; its log ends with:"
            tail -20 "$work/ciclo.log" >&2
            exit 1
        fi
        reason=$(grep -m1 -E '^[A-Za-z]*Error|ERROR' "$work/mlserver.log" | cut -c1-120 || true)
        peer="n/a (MLServer failed in round $i: ${reason:-see its log above})"
        log "MLServer failed; its log ends with:"
        tail -20 "$work/mlserver.log" >&2
        servers=(ciclo)
    done
done

# What both predicted for the largest batch: the same task, fitted by different libraries.
agree=""
if [[ -z "$peer" ]]; then
    agree=$("$python" - "$work/ciclo-predict.json" "$work/mlserver-predict.json" <<'EOF'
import json
import sys

def predict(path):
    outputs = json.load(open(path))["outputs"]
    return next(o["data"] for o in outputs if o["name"] == "predict")

a, b = predict(sys.argv[1]), predict(sys.argv[2])
print(f"{sum(x == y for x, y in zip(a, b))}/{len(a)}")
EOF
    )
fi


ciclo_version=$("$bin/ciclo" --version | awk '{print $2}')
if [[ -z "$peer" ]]; then
    read -r mlserver_version sklearn_version < <("$venv/bin/python" -c \
        'import mlserver, sklearn; print(mlserver.__version__, sklearn.__version__)')
    peer_name="MLServer $mlserver_version"
    peer_model="scikit-learn $sklearn_version LogisticRegression (joblib, mlserver-sklearn)"
    agreement="; predictions agree on $agree rows of the batch-${batches[-1]} request"
else
    peer_name="MLServer"
    peer_model="scikit-learn LogisticRegression"
    agreement=""
fi
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "serving (Open Inference Protocol v2, REST): ciclo serve $ciclo_version against $peer_name (parallel_workers=$mlserver_workers, access log off)"
echo "model: same task, different libraries: a logistic regression on 8 float features fitted on the same $train_rows-row csv,"
echo "  ciclo train (linfa; model.json, validation accuracy $(printf '%.3f' "$accuracy")) | $peer_model$agreement"
echo "load: bench-load, closed loop over keep-alive connections, $seconds s after $warmup s of warm-up; server pinned to CPU $server_cpus, load generator to CPU $load_cpus; medians of $runs runs"
echo "machine: $(nproc) cores, ${cpu:-unknown CPU}"
[[ -z "$peer" ]] || echo "MLServer: $peer"
row='%-22s | %9s %8s %8s | %9s %8s %8s | %7s %6s %6s\n'
printf '%-22s | %-27s | %-27s | %s\n' "" "ciclo serve $ciclo_version" "$peer_name" "ciclo / MLServer"
# shellcheck disable=SC2059
printf "$row" "" "req/s" "p50 ms" "p99 ms" "req/s" "p50 ms" "p99 ms" "req/s" "p50" "p99"
for b in "${batches[@]}"; do
    for c in "${concurrencies[@]}"; do
        k=$b,$c
        cr=$(med "${rps[ciclo,$k]}") cm=$(med "${p50[ciclo,$k]}") cn=$(med "${p99[ciclo,$k]}")
        mr=1 mm=1 mn=1
        if [[ -z "$peer" ]]; then
            mr=$(med "${rps[mlserver,$k]}") mm=$(med "${p50[mlserver,$k]}") mn=$(med "${p99[mlserver,$k]}")
        fi
        # shellcheck disable=SC2059
        printf "$row" "batch $b, $c client$([[ $c == 1 ]] || echo s)" \
            "$(printf '%.0f' "$cr")" "$(printf '%.3f' "$cm")" "$(printf '%.3f' "$cn")" \
            "$(peer_cell '%.0f' "$mr")" "$(peer_cell '%.3f' "$mm")" "$(peer_cell '%.3f' "$mn")" \
            "$(ratio "$cr" "$mr")" "$(ratio "$cm" "$mm")" "$(ratio "$cn" "$mn")"
    done
done
one='%-22s | %27s | %27s | %7s\n'
cc=$(med "${colds[ciclo]}") cr=$(med "${rss[ciclo]}") ch=$(med "${hwm[ciclo]}")
mc=1 mr=1 mh=1
if [[ -z "$peer" ]]; then
    mc=$(med "${colds[mlserver]}") mr=$(med "${rss[mlserver]}") mh=$(med "${hwm[mlserver]}")
fi
# shellcheck disable=SC2059
printf "$one" "cold start to ready" "$(printf '%.3f s' "$cc")" "$(peer_cell '%.3f s' "$mc")" "$(ratio "$cc" "$mc")"
# shellcheck disable=SC2059
printf "$one" "RSS after load" "$(printf '%.1f MiB' "$(calc "$cr / 1024")")" \
    "$(peer_cell '%.1f MiB' "$(calc "$mr / 1024")")" "$(ratio "$cr" "$mr")"
# shellcheck disable=SC2059
printf "$one" "peak RSS (VmHWM)" "$(printf '%.1f MiB' "$(calc "$ch / 1024")")" \
    "$(peer_cell '%.1f MiB' "$(calc "$mh / 1024")")" "$(ratio "$ch" "$mh")"

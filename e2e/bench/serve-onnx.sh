#!/usr/bin/env bash
# ONNX serving benchmark: `ciclo serve` (ONNX Runtime through the `ort` crate) against Seldon's
# MLServer serving the same ONNX files with ONNX Runtime's Python API (MLServer has no ONNX
# runtime of its own; e2e/bench/mlserver_onnx.py is the custom runtime its users write), on
# the same requests, in the same invocation.
#
# The files are the exporter fixtures of ciclo-serve's tests (operator/serve/tests/fixtures/
# exporters, made by skl2onnx): a scikit-learn LogisticRegression and a Pipeline(StandardScaler,
# MLPClassifier(16)) on the 30 features of the breast-cancer data, ZipMap off. Each request is
# one `input` tensor FP32 [batch, 30] of the data's rows, asking for every output.
#
# Load: wrk (Debian's; installed with apt-get when missing), one thread, C keep-alive
# connections, the same body each time, BENCH_SECONDS after BENCH_WARMUP seconds of warm-up.
# The server is pinned to BENCH_SERVER_CPUS and wrk to BENCH_LOAD_CPUS, so neither takes the
# other's core. The ceiling is measured first: wrk against a bare axum server on the same
# runtime (bench-bare: it reads each request whole and answers a fixed response, no parsing,
# model or metrics) with the same batch-1 requests at the highest concurrency; a figure near
# it measures wrk and the network stack, not the server. Medians of BENCH_RUNS rounds (the
# order alternates). A non-2xx answer fails the run.
#
# MLServer comes from the venv the serving benchmarks share (serve-harness.sh, of
# requirements-serve.txt, which pins onnxruntime too); if it cannot be installed or started,
# ciclo's figures are still printed.
#
# Environment: BENCH_RUNS (3), BENCH_SECONDS (10), BENCH_WARMUP (2), BENCH_CONCURRENCY
# ("1 16"), BENCH_BATCHES ("1 100"), BENCH_MODELS ("logreg_nozipmap mlp_nozipmap"),
# BENCH_SERVER_CPUS (0), BENCH_LOAD_CPUS (1), PYTHON (python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench
runs=${BENCH_RUNS:-3}
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
read -ra concurrencies <<<"${BENCH_CONCURRENCY:-1 16}"
read -ra batches <<<"${BENCH_BATCHES:-1 100}"
read -ra models <<<"${BENCH_MODELS:-logreg_nozipmap mlp_nozipmap}"
server_cpus=${BENCH_SERVER_CPUS:-0}
load_cpus=${BENCH_LOAD_CPUS:-1}
python=${PYTHON:-python3}
fixtures=$root/operator/serve/tests/fixtures/exporters
# shellcheck source=serve-harness.sh
. "$here/serve-harness.sh"

if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian's)"
    apt-get install -y -qq wrk >/dev/null
fi

log "building ciclo and bench-bare (release)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p ciclo -p ciclo-bench
bin=${CARGO_TARGET_DIR:-$root/target}/release/ciclo
bare=${CARGO_TARGET_DIR:-$root/target}/release/bench-bare
onnxruntime=$("$root/e2e/onnxruntime/fetch.sh")

# The request bodies: the fixture's five rows, repeated up to the batch.
for b in "${batches[@]}"; do
    "$python" - "$fixtures/logreg_nozipmap.json" "$b" >"$work/body-$b.json" <<'EOF'
import json, sys
doc, batch = json.load(open(sys.argv[1])), int(sys.argv[2])
rows = [doc["input"]["data"][i * 30:(i + 1) * 30] for i in range(doc["input"]["shape"][0])]
data = [x for i in range(batch) for x in rows[i % len(rows)]]
print(json.dumps({"inputs": [{"name": "input", "shape": [batch, 30], "datatype": "FP32", "data": data}]}))
EOF
done
cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "rb")
wrk.body = f:read("*a")
f:close()
EOF

# Starts a server for `model` in a process group of its own, pinned to the server's cores,
# and waits until the model is ready. Sets pid and url.
start() {
    local server=$1 model=$2 port ports i
    port=$(free_port)
    url=http://127.0.0.1:$port
    case $server in
    bare)
        setsid taskset -c "$server_cpus" "$bare" "$port" >>"$work/bare.log" 2>&1 &
        ;;
    ciclo)
        setsid taskset -c "$server_cpus" "$bin" serve --model-uri "file://$fixtures/$model.onnx" \
            --model-name "$model" --port "$port" --drain-seconds 0 --onnxruntime "$onnxruntime" \
            >>"$work/ciclo.log" 2>&1 &
        ;;
    mlserver)
        mkdir -p "$work/mlserver/$model"
        printf '{"name": "%s", "implementation": "mlserver_onnx.OnnxModel", "parameters": {"uri": "%s"}}\n' \
            "$model" "$fixtures/$model.onnx" >"$work/mlserver/$model/model-settings.json"
        ports=("$(free_port)" "$(free_port)")
        (cd "$work" && exec env PYTHONPATH="$here" MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT="$port" \
            MLSERVER_GRPC_PORT="${ports[0]}" MLSERVER_METRICS_PORT="${ports[1]}" \
            MLSERVER_METRICS_DIR="$work/mlserver-metrics" MLSERVER_DEBUG=false \
            MLSERVER_PARALLEL_WORKERS=0 \
            setsid taskset -c "$server_cpus" "$venv/bin/mlserver" start "$work/mlserver/$model") \
            >>"$work/mlserver.log" 2>&1 &
        ;;
    esac
    pid=$!
    running+=("$pid")
    for ((i = 0; i < 600; i++)); do
        curl -sf "$url/v2/models/$model/ready" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}


# wrk's figures as "req/s p50_ms p99_ms"; fails on a socket error or a non-2xx answer.
# `body` empty: GET.
load() {
    local target=$1 body=$2 c=$3 secs=$4 out
    local script=()
    [[ -z "$body" ]] || script=(-s "$work/post.lua")
    out=$(BODY=$body taskset -c "$load_cpus" wrk -t1 -c"$c" -d"${secs}s" --latency "${script[@]}" "$target") ||
        { echo "$out" >&2; return 1; }
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        echo "$out" >&2
        return 1
    fi
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
        END { print rps, p50, p99 }' <<<"$out"
}

declare -A rps p50 p99
measure() {
    local server=$1 model=$2 b c r m n
    start "$server" "$model" || { stop; return 1; }
    for b in "${batches[@]}"; do
        for c in "${concurrencies[@]}"; do
            load "$url/v2/models/$model/infer" "$work/body-$b.json" "$c" "$warmup" >/dev/null || { stop; return 1; }
            read -r r m n < <(load "$url/v2/models/$model/infer" "$work/body-$b.json" "$c" "$seconds") ||
                { stop; return 1; }
            [[ -n "$r" ]] || { stop; return 1; }
            rps[$server,$model,$b,$c]+=" $r"
            p50[$server,$model,$b,$c]+=" $m"
            p99[$server,$model,$b,$c]+=" $n"
            log "  $server $model batch $b x $c: $r req/s, p50 $m ms, p99 $n ms"
        done
    done
    stop
}

# The ceiling: the bare server on the same batch-1 requests, at the highest concurrency.
start bare "${models[0]}" || { log "ERROR: bench-bare did not start"; tail -20 "$work/bare.log" >&2; exit 1; }
load "$url/v2/models/${models[0]}/infer" "$work/body-1.json" "${concurrencies[-1]}" "$warmup" >/dev/null
read -r ceiling _ _ < <(load "$url/v2/models/${models[0]}/infer" "$work/body-1.json" "${concurrencies[-1]}" "$seconds")
stop
log "the ceiling (bench-bare, batch 1, ${concurrencies[-1]} connections): $ceiling req/s"

servers=(ciclo)
[[ -n "$peer" ]] || servers+=(mlserver)
for ((i = 1; i <= runs; i++)); do
    log "round $i of $runs"
    order=("${servers[@]}")
    if ((i % 2 == 0 && ${#servers[@]} == 2)); then
        order=(mlserver ciclo)
    fi
    for s in "${order[@]}"; do
        for model in "${models[@]}"; do
            measure "$s" "$model" && continue
            if [[ $s == ciclo ]]; then
                log "ERROR: ciclo serve failed on $model; its log ends with:"
                tail -20 "$work/ciclo.log" >&2
                exit 1
            fi
            peer="n/a (MLServer failed on $model in round $i; see its log above)"
            tail -20 "$work/mlserver.log" >&2
            servers=(ciclo)
            break
        done
    done
done

ciclo_version=$("$bin" --version | awk '{print $2}')
peer_name=MLServer
if [[ -z "$peer" ]]; then
    peer_name="MLServer $("$venv/bin/python" -c 'import mlserver; print(mlserver.__version__)')"
fi
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "ONNX serving (Open Inference Protocol v2, REST): ciclo serve $ciclo_version (ONNX Runtime 1.32.0, ort) against $peer_name (onnxruntime 1.32.0, mlserver_onnx.OnnxModel, parallel_workers=0)"
echo "files: skl2onnx 1.20.0 exports of scikit-learn 1.9.1 models on the 30 breast-cancer features (ZipMap off); requests FP32 [batch, 30]"
echo "load: wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}'), one thread, keep-alive, $seconds s after $warmup s of warm-up; server pinned to CPU $server_cpus, wrk to CPU $load_cpus; medians of $runs runs"
echo "the ceiling here: $(printf '%.0f' "$ceiling") req/s (wrk against bench-bare, a bare axum server on the same runtime that reads the same batch-1 requests and answers a fixed response; ${concurrencies[-1]} connections)"
echo "machine: $(nproc) cores, ${cpu:-unknown CPU}"
[[ -z "$peer" ]] || echo "MLServer: $peer"
row='%-36s | %9s %8s %8s | %9s %8s %8s | %7s %6s %6s\n'
printf '%-36s | %-27s | %-27s | %s\n' "" "ciclo serve $ciclo_version" "$peer_name" "ciclo / MLServer"
# shellcheck disable=SC2059
printf "$row" "" "req/s" "p50 ms" "p99 ms" "req/s" "p50 ms" "p99 ms" "req/s" "p50" "p99"
for model in "${models[@]}"; do
    for b in "${batches[@]}"; do
        for c in "${concurrencies[@]}"; do
            k=$model,$b,$c
            cr=$(med "${rps[ciclo,$k]}") cm=$(med "${p50[ciclo,$k]}") cn=$(med "${p99[ciclo,$k]}")
            mr=1 mm=1 mn=1
            if [[ -z "$peer" ]]; then
                mr=$(med "${rps[mlserver,$k]}") mm=$(med "${p50[mlserver,$k]}") mn=$(med "${p99[mlserver,$k]}")
            fi
            # shellcheck disable=SC2059
            printf "$row" "$model, batch $b, $c conn" \
                "$(printf '%.0f' "$cr")" "$(printf '%.3f' "$cm")" "$(printf '%.3f' "$cn")" \
                "$(peer_cell '%.0f' "$mr")" "$(peer_cell '%.3f' "$mm")" "$(peer_cell '%.3f' "$mn")" \
                "$(ratio "$cr" "$mr")" "$(ratio "$cm" "$mm")" "$(ratio "$cn" "$mn")"
        done
    done
done

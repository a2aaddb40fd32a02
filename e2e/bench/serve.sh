#!/usr/bin/env bash
# Serving benchmark: `ciclo serve` beside a bare server (the ceiling) and Seldon's MLServer, on
# the same requests, the same core, in the same invocation, over both halves of the Open
# Inference Protocol: REST (load from wrk, Debian's) and gRPC (load from ghz, pinned, built
# from the Go module proxy).
#
# Models: the Breast Cancer Wisconsin data of examples/data/wdbc (569 rows, 30 features),
#   json  ciclo: the model.json `ciclo train` fits (LogisticRegression, linfa), FP64 inputs;
#         MLServer: scikit-learn's LogisticRegression fitted on the same rows (mlserver-sklearn).
#   onnx  both: skl2onnx's export of a scikit-learn LogisticRegression on the same 30 features
#         (operator/serve/tests/fixtures/exporters/logreg_nozipmap.onnx), FP32 inputs;
#         MLServer through e2e/bench/mlserver_onnx.py (ONNX Runtime's Python API).
# Requests: one `input` tensor [batch, 30] of the data's rows, each value scaled by a random
#   factor within ±10 %, so no two requests are alike: wrk and ghz rotate over 1000 distinct
#   bodies (batch 1) or 100 (batch 100).
# Ceilings: bench-bare, an axum server and a tonic server on the runtime `ciclo serve` builds,
#   that read each request whole and answer a fixed response: what the core and the load
#   generator can do before any JSON, model or metrics work. Measured on the same requests at
#   every concurrency.
#
# Every figure is the median over BENCH_RUNS rounds of a BENCH_SECONDS run after
# BENCH_WARMUP seconds of warm-up, the servers pinned to BENCH_SERVER_CPUS and the load
# generator to BENCH_LOAD_CPUS. In a round all servers of a model are up at once and each cell
# is measured on each of them back to back (their order alternating from cell to cell), so a
# ratio is the median of ratios of figures taken within seconds of each other: this shared
# machine's speed drifts by up to 2x over minutes, which a ratio of medians taken minutes
# apart carried into the result. A run with any non-2xx answer,
# socket error or gRPC error does not count: ciclo's fails the benchmark, MLServer's shows as
# n/a with the reason. Batch-100 figures are rows/s.
#
# MLServer comes from the venv the serving benchmarks share (serve-harness.sh); if it cannot
# be installed or started, ciclo's figures are still printed.
#
# Capture: ciclo with --capture-uri (a local directory) at each ratio of BENCH_CAPTURE, on the
# json model over REST, batch 1, 64 connections, beside ciclo without capture in the same
# rounds. Files of 10,000 rows, so the Parquet encoding falls within the measured seconds.
#
# Environment: BENCH_RUNS (3), BENCH_SECONDS (5), BENCH_WARMUP (1), BENCH_CONCURRENCY
# ("1 64 1024"), BENCH_BATCHES ("1 100"), BENCH_MODELS ("json onnx"), BENCH_PROTOCOLS
# ("rest grpc"), BENCH_CAPTURE ("10 100": percentages; empty: none), BENCH_SERVER_CPUS (0),
# BENCH_LOAD_CPUS (1), PYTHON (python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${CICLO_CACHE_DIR:-$HOME/.cache/ciclo}/bench
runs=${BENCH_RUNS:-3}
seconds=${BENCH_SECONDS:-5}
warmup=${BENCH_WARMUP:-1}
read -ra concurrencies <<<"${BENCH_CONCURRENCY:-1 64 1024}"
read -ra batches <<<"${BENCH_BATCHES:-1 100}"
read -ra models <<<"${BENCH_MODELS:-json onnx}"
read -ra protocols <<<"${BENCH_PROTOCOLS:-rest grpc}"
read -ra captures <<<"${BENCH_CAPTURE-10 100}"
server_cpus=${BENCH_SERVER_CPUS:-0}
load_cpus=${BENCH_LOAD_CPUS:-1}
python=${PYTHON:-python3}
ghz_version=v0.120.0
onnx_file=$root/operator/serve/tests/fixtures/exporters/logreg_nozipmap.onnx
proto=$root/operator/serve/proto/grpc_predict_v2.proto
# shellcheck source=serve-harness.sh
. "$here/serve-harness.sh"

# A thousand connections need as many descriptors, in the servers and in the generators.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian's)"
    apt-get install -y -qq wrk >/dev/null
fi
ghz=$cache/ghz-$ghz_version/ghz
if [[ ! -x $ghz ]]; then
    log "building ghz $ghz_version (once)"
    GOBIN=$(dirname "$ghz") go install "github.com/bojand/ghz/cmd/ghz@$ghz_version" >&2
fi

log "building ciclo and bench-bare (release)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p ciclo -p ciclo-bench
bin=${CARGO_TARGET_DIR:-$root/target}/release/ciclo
bare=${CARGO_TARGET_DIR:-$root/target}/release/bench-bare
onnxruntime=$("$root/e2e/onnxruntime/fetch.sh")

# The data, ciclo's model.json trained on it through a snapshot as a TrainingRun would.
mkdir -p "$work/data"
cat "$root"/examples/data/wdbc/batch-{1,2,3}.csv | awk 'NR == 1 || !/^diagnosis/' >"$work/data/wdbc.csv"
features=$(head -1 "$work/data/wdbc.csv" | tr ',' '\n' | tail -n +2 | awk '{printf "%s\"%s\"", (NR > 1 ? "," : ""), $0}')
snapshot=$("$bin" dataset snapshot --source "file://$work/data" --include '*.csv' \
    --artifacts "file://$work/artifacts" 2>"$work/snapshot.log")
version=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' <<<"$snapshot")
[[ -n "$version" ]] || { log "ERROR: the snapshot gave no version: $snapshot"; exit 1; }
trained=$("$bin" train --dataset "file://$work/data" \
    --manifest "file://$work/artifacts/$version/manifest.json" --version "$version" \
    --output "file://$work/model" 2>"$work/train.log" \
    --trainer '{"algorithm": "LogisticRegression", "target": "diagnosis", "features": ['"$features"']}')
[[ $trained == *'"Succeeded"'* ]] || { log "ERROR: ciclo train failed: $trained"; exit 1; }

# The request bodies (REST, one per line) and messages (gRPC, a JSON array ghz rotates over).
"$python" - "$work" "${batches[@]}" <<'EOF'
import csv, json, random, sys
work, batches = sys.argv[1], [int(b) for b in sys.argv[2:]]
rows = [[float(v) for v in r[1:]] for r in csv.reader(open(f"{work}/data/wdbc.csv"))
        if r[0] != "diagnosis"]
rng = random.Random(17)
for batch in batches:
    count = 1000 if batch == 1 else 100
    for model, datatype, field in (("json", "FP64", "fp64_contents"), ("onnx", "FP32", "fp32_contents")):
        bodies, messages = [], []
        for _ in range(count):
            data = [round(v * rng.uniform(0.9, 1.1), 6) for _ in range(batch) for v in rng.choice(rows)]
            tensor = {"name": "input", "shape": [batch, 30], "datatype": datatype}
            bodies.append(json.dumps({"inputs": [{**tensor, "data": data}]}))
            messages.append({"model_name": "wdbc", "inputs": [{**tensor, "contents": {field: data}}]})
        open(f"{work}/rest-{model}-{batch}.txt", "w").write("\n".join(bodies) + "\n")
        json.dump(messages, open(f"{work}/grpc-{model}-{batch}.json", "w"))
EOF
cat >"$work/rotate.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local i = 0
request = function()
    i = i % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
end
EOF

# MLServer's scikit-learn model of the json row, fitted on the same rows.
if [[ -z "$peer" ]]; then
    mkdir -p "$work/mlserver-json/wdbc"
    if ! "$venv/bin/python" - "$work/data/wdbc.csv" "$work/mlserver-json/wdbc/model.joblib" \
        >"$work/sklearn.log" 2>&1 <<'EOF'; then
import csv, sys
import joblib
from sklearn.linear_model import LogisticRegression
rows = [r for r in csv.reader(open(sys.argv[1])) if r[0] != "diagnosis"]
x = [[float(v) for v in r[1:]] for r in rows]
y = [r[0] for r in rows]
joblib.dump(LogisticRegression(max_iter=5000).fit(x, y), sys.argv[2])
EOF
        peer="n/a (the scikit-learn fit failed: $(tail -1 "$work/sklearn.log"))"
    fi
    printf '{"name": "wdbc", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}\n' \
        >"$work/mlserver-json/wdbc/model-settings.json"
    mkdir -p "$work/mlserver-onnx/wdbc"
    printf '{"name": "wdbc", "implementation": "mlserver_onnx.OnnxModel", "parameters": {"uri": "%s"}}\n' \
        "$onnx_file" >"$work/mlserver-onnx/wdbc/model-settings.json"
fi

# Starts `server` for `model` in a process group of its own, pinned to the server's cores,
# and waits until it is ready. Records its pid, url (REST) and grpc address (host:port) under
# its name.
declare -A pids urls grpcs
start() {
    local server=$1 model=$2 port gport i pid url
    port=$(free_port)
    gport=$(free_port)
    url=http://127.0.0.1:$port
    case $server in
    bare)
        setsid taskset -c "$server_cpus" "$bare" "$port" "$gport" >>"$work/bare.log" 2>&1 &
        ;;
    ciclo | ciclo-capture-*)
        local uri=file://$work/model/model.json capture=()
        [[ $model == json ]] || uri=file://$onnx_file
        if [[ $server == ciclo-capture-* ]]; then
            local percent=${server#ciclo-capture-}
            rm -rf "$work/$server"
            capture=(--capture-uri "file://$work/$server" --capture-ratio "$(calc "$percent / 100")"
                --capture-max-rows 10000)
        fi
        setsid taskset -c "$server_cpus" "$bin" serve --model-uri "$uri" --model-name wdbc \
            --port "$port" --grpc-port "$gport" --drain-seconds 0 --onnxruntime "$onnxruntime" \
            "${capture[@]}" >>"$work/ciclo.log" 2>&1 &
        ;;
    mlserver)
        # Every listener on loopback, no access log, inference in the server's own process
        # (its fastest setting on one core).
        (cd "$work" && exec env PYTHONPATH="$here" MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT="$port" \
            MLSERVER_GRPC_PORT="$gport" MLSERVER_METRICS_PORT="$(free_port)" \
            MLSERVER_METRICS_DIR="$work/mlserver-metrics" MLSERVER_DEBUG=false \
            MLSERVER_PARALLEL_WORKERS=0 \
            setsid taskset -c "$server_cpus" "$venv/bin/mlserver" start "$work/mlserver-$model") \
            >>"$work/mlserver.log" 2>&1 &
        ;;
    esac
    pid=$!
    running+=("$pid")
    pids[$server]=$pid urls[$server]=$url grpcs[$server]=127.0.0.1:$gport
    for ((i = 0; i < 600; i++)); do
        curl -sf "$url/v2/models/wdbc/ready" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Waits (at most 15 s) until the servers up have used no CPU for 0.3 s: one that is still
# answering a load's last requests (MLServer after a thousand connections) must not take the
# core from the next measured run.
settle() {
    local i before after
    ticks() { for p in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{t += $1} END {print t + 0}'; }
    before=$(ticks)
    for ((i = 0; i < 50; i++)); do
        sleep 0.3
        after=$(ticks)
        [[ $after != "$before" ]] || return 0
        before=$after
    done
}

# One load run against `server`: "req/s p50_ms p99_ms", or "fail <why>" on any non-2xx
# answer or error.
load() {
    local server=$1 protocol=$2 model=$3 b=$4 c=$5 secs=$6 out
    case $protocol in
    rest)
        out=$(BODIES=$work/rest-$model-$b.txt taskset -c "$load_cpus" wrk -t1 -c"$c" -d"${secs}s" \
            --timeout 10s --latency -s "$work/rotate.lua" "${urls[$server]}/v2/models/wdbc/infer" 2>&1) ||
            { echo "fail wrk: $(tail -1 <<<"$out")"; return; }
        if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
            echo "fail $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | paste -sd';')"
            return
        fi
        awk '
            function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
            $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
            END { print rps, p50, p99 }' <<<"$out"
        ;;
    grpc)
        out=$(taskset -c "$load_cpus" "$ghz" --insecure --proto "$proto" \
            --call inference.GRPCInferenceService/ModelInfer -D "$work/grpc-$model-$b.json" \
            -c "$c" --connections "$c" -z "${secs}s" --duration-stop=wait --cpus 1 \
            --format json "${grpcs[$server]}" 2>&1) || { echo "fail ghz: $(tail -1 <<<"$out")"; return; }
        "$python" -c '
import json, sys
d = json.load(sys.stdin)
codes = d.get("statusCodeDistribution") or {}
bad = {k: v for k, v in codes.items() if k != "OK"}
errors = d.get("errorDistribution") or {}
if bad or errors or not codes:
    print("fail gRPC", bad, list(errors)[:1])
else:
    p = {l["percentage"]: l["latency"] / 1e6 for l in d["latencyDistribution"]}
    print(d["rps"], p[50], p[99])' <<<"$out"
        ;;
    esac
}

# Figures by "server,model,protocol,batch,connections": each round's req/s, p50 and p99, and
# ciclo's ratio to each peer measured right beside it in the same round ("ciclo/bare,…").
declare -A rps p50 p99 why ratio
# One round of one model: every server up at once (idle but for its turn), and every cell
# measured on each in turn, back to back, so each ciclo figure has its ceiling and its peer
# measured within seconds of it, whatever the shared machine does over minutes. The servers'
# order alternates from cell to cell and between rounds.
measure() {
    local round=$1 model=$2 protocol b c r m n s cell=0
    local -a up=()
    for s in "${servers[@]}" "${capturing[@]}"; do
        [[ $s != ciclo-capture-* || $model == json ]] || continue
        if start "$s" "$model"; then
            up+=("$s")
            continue
        fi
        if [[ $s == mlserver ]]; then
            peer="n/a (MLServer did not start for $model in round $round; see its log above)"
            tail -20 "$work/mlserver.log" >&2
            servers=(bare ciclo)
            stop_server "$s"
            continue
        fi
        log "ERROR: $s did not start for $model in round $round; its log ends with:"
        tail -20 "$work/${s%%-*}.log" >&2
        exit 1
    done
    for protocol in "${protocols[@]}"; do
        for b in "${batches[@]}"; do
            for c in "${concurrencies[@]}"; do
                local k=$model,$protocol,$b,$c
                local -a order=("${up[@]}")
                (((round + cell++) % 2 == 1)) || order=($(printf '%s\n' "${up[@]}" | tac))
                declare -A now=()
                for s in "${order[@]}"; do
                    # Capture is measured on the one cell where it is compared.
                    [[ $s != ciclo-capture-* || $k == json,rest,1,64 ]] || continue
                    settle
                    load "$s" "$protocol" "$model" "$b" "$c" "$warmup" >/dev/null
                    read -r r m n < <(load "$s" "$protocol" "$model" "$b" "$c" "$seconds")
                    if [[ $r == fail || -z $r ]]; then
                        why[$s,$k]="$m $n"
                        log "  $s,$k: FAILED: $m $n"
                        if [[ $s == ciclo* ]]; then
                            log "ERROR: $s failed on $k in round $round; its log ends with:"
                            tail -20 "$work/${s%%-*}.log" >&2
                            exit 1
                        fi
                        continue
                    fi
                    now[$s]=$r
                    rps[$s,$k]+=" $r"
                    p50[$s,$k]+=" $m"
                    p99[$s,$k]+=" $n"
                    log "  $s,$k: $r req/s, p50 $m ms, p99 $n ms"
                done
                for s in "${!now[@]}"; do
                    [[ $s != ciclo ]] || continue
                    if [[ $s == ciclo-capture-* ]]; then
                        ratio[$s/ciclo,$k]+=" $(calc "${now[$s]} / ${now[ciclo]}")"
                    else
                        ratio[ciclo/$s,$k]+=" $(calc "${now[ciclo]} / ${now[$s]}")"
                    fi
                done
                unset now
            done
        done
    done
    for s in "${up[@]}"; do
        if [[ $s == ciclo-capture-* ]]; then
            log "  $s: $(curl -s "${urls[$s]}/metrics" | awk '/^ciclo_serve_capture_(requests|dropped_requests|files)_total/ {printf "%s %s ", $1, $2}')"
        fi
        [[ $s == bare ]] || log "  $s $model: RSS after load $(($(awk '/VmRSS/ {print $2}' "/proc/${pids[$s]}/status" 2>/dev/null || echo 0) / 1024)) MiB, $(ls "/proc/${pids[$s]}/task" 2>/dev/null | wc -l) threads"
        stop_server "$s"
    done
}

# Stops one server started by `start`.
stop_server() {
    pid=${pids[$1]}
    stop
    unset "pids[$1]" "urls[$1]" "grpcs[$1]"
}

servers=(bare ciclo)
[[ -n "$peer" ]] || servers+=(mlserver)
capturing=()
if [[ " ${models[*]} " == *" json "* && " ${protocols[*]} " == *" rest "* ]]; then
    for percent in "${captures[@]}"; do capturing+=("ciclo-capture-$percent"); done
fi
for ((i = 1; i <= runs; i++)); do
    log "round $i of $runs"
    for model in "${models[@]}"; do
        measure "$i" "$model"
    done
done

# A cell: the median of a figure (req/s, or rows/s at batch > 1), or n/a with the reason.
cell() {
    local k=$1 b=$2 f=$3
    if [[ -z "${rps[$k]:-}" ]]; then echo n/a; return; fi
    case $f in
    rate) printf '%.0f' "$(calc "$(med "${rps[$k]}") * $b")" ;;
    p50) printf '%.2f' "$(med "${p50[$k]}")" ;;
    p99) printf '%.2f' "$(med "${p99[$k]}")" ;;
    esac
}
# The median of a ratio's rounds (each measured side by side in its round), or n/a.
share() {
    if [[ -z "${ratio[$1]:-}" ]]; then echo n/a; return; fi
    printf '%.2fx' "$(med "${ratio[$1]}")"
}

ciclo_version=$("$bin" --version | awk '{print $2}')
peer_name=MLServer
[[ -n "$peer" ]] || peer_name="MLServer $("$venv/bin/python" -c 'import mlserver; print(mlserver.__version__)')"
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "serving, Open Inference Protocol v2 over REST and gRPC: ciclo serve $ciclo_version beside bench-bare (the ceiling) and $peer_name"
echo "data: Breast Cancer Wisconsin, 30 features; every request distinct (rows scaled within ±10 %); batch 100 in rows/s"
echo "  json: ciclo's model.json (ciclo train, LogisticRegression) | MLServer: scikit-learn LogisticRegression, mlserver-sklearn"
echo "  onnx: skl2onnx export of a scikit-learn LogisticRegression, both through ONNX Runtime 1.32"
echo "load: REST wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}') (one thread), gRPC ghz $ghz_version (one connection per client); server on CPU $server_cpus, generator on CPU $load_cpus; ${seconds} s after ${warmup} s of warm-up; medians of $runs rounds"
echo "machine: $(nproc) cores, ${cpu:-unknown CPU}"
[[ -z "$peer" ]] || echo "MLServer: $peer"
# ciclo's rate at a concurrency as a share of its best median rate over the concurrencies of
# the same model, protocol and batch: how flat it stays as connections grow.
of_best() {
    local k=$1 c best=0 v
    for c in "${concurrencies[@]}"; do
        [[ -n "${rps[ciclo,${k%,*},$c]:-}" ]] || continue
        v=$(med "${rps[ciclo,${k%,*},$c]}")
        best=$(calc "($v > $best) ? $v : $best")
    done
    if [[ -z "${rps[ciclo,$k]:-}" ]]; then echo n/a; return; fi
    printf '%.0f%%' "$(calc "100 * $(med "${rps[ciclo,$k]}") / $best")"
}

row='%-5s %-5s %5s %5s | %9s | %9s %7s %7s %7s %5s | %9s %7s %7s %7s\n'
# shellcheck disable=SC2059
printf "$row" model proto batch conns "bare" "ciclo" p50ms p99ms "/bare" "/best" "$peer_name" p50ms p99ms "ciclo/"
for model in "${models[@]}"; do
    for protocol in "${protocols[@]}"; do
        for b in "${batches[@]}"; do
            for c in "${concurrencies[@]}"; do
                k=$model,$protocol,$b,$c
                # shellcheck disable=SC2059
                printf "$row" "$model" "$protocol" "$b" "$c" "$(cell "bare,$k" "$b" rate)" \
                    "$(cell "ciclo,$k" "$b" rate)" "$(cell "ciclo,$k" "$b" p50)" "$(cell "ciclo,$k" "$b" p99)" \
                    "$(share "ciclo/bare,$k")" "$(of_best "$k")" \
                    "$(cell "mlserver,$k" "$b" rate)" "$(cell "mlserver,$k" "$b" p50)" "$(cell "mlserver,$k" "$b" p99)" \
                    "$(share "ciclo/mlserver,$k")"
                [[ -z "${why[mlserver,$k]:-}" ]] || echo "      MLServer $k: ${why[mlserver,$k]}"
            done
        done
    done
done
if ((${#capturing[@]})); then
    echo "capture (json, REST, batch 1, 64 connections; files of 10,000 rows to a local directory): req/s and share of ciclo without capture"
    line="  off $(cell "ciclo,json,rest,1,64" 1 rate)"
    for s in "${capturing[@]}"; do
        line+=" | ${s#ciclo-capture-} % $(cell "$s,json,rest,1,64" 1 rate) ($(share "$s/ciclo,json,rest,1,64"))"
    done
    echo "$line"
fi

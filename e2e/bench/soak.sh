#!/usr/bin/env bash
# Soak benchmark on the local control plane (e2e/cluster): one TrainingRun iterated
# BENCH_ITERATIONS (200) times on changing data, with the operator (`ciclo operator`, release
# build) running as a local process, as a team's TrainingRun retrains for months.
#
# Each iteration records a new accepted version of the Dataset (through its status
# subresource, as a finished check would) and waits until the TrainingRun, which follows the
# latest version, has trained on it and registered the next ModelVersion. The run is a real
# Job on the process node: a standard-library Python trainer following the workload contract.
# Its history keeps 10 runs (the default), so from the 11th iteration on every run pushes one
# out: what once made the operator write without end.
#
# Measured, each beside its goal:
#   1. the operator's API requests per iteration (the Lease's left out), over the 10
#      iterations up to iteration 10, 100 and 200 — goal: flat;
#   2. its resident memory at those iterations — goal: flat;
#   3. writes (create, update, patch, delete) while idle: once the last run is recorded, in
#      the next BENCH_SETTLE_SECONDS (60) — goal 0; the Lease's renewals are shown apart;
#   4. what the iterations left: training Jobs (goal: the history's 10), ModelVersions (one
#      per iteration), `lastModelVersion`, and RunSucceeded Events (one per run).
#
# Environment: BENCH_ITERATIONS (200), BENCH_SETTLE_SECONDS (60), BENCH_TIMEOUT_SECONDS (120:
# per iteration), BENCH_CHECK=1 (exit 1 when a goal is missed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
iterations=${BENCH_ITERATIONS:-200}
settle=${BENCH_SETTLE_SECONDS:-60}
timeout=${BENCH_TIMEOUT_SECONDS:-120}
quiet=10
export KUBECONFIG=$root/.cluster/kubeconfig
kubectl=$("$root/e2e/cluster/build.sh")/kubectl
bin=${CARGO_TARGET_DIR:-$root/target}/release/ciclo
ns=ciclo-bench-soak-$$
# Only this namespace: whatever else the cluster holds (a demo, tests) is not measured.
operator_args=(--watch-namespaces "$ns")
# shellcheck source=operator-harness.sh
source "$here/operator-harness.sh"

# A team's trainer: reads its contract from the environment, reports a result.
script='import json, os
summary = {"outcome": "Succeeded", "metrics": {"accuracy": 0.9},
           "model": os.environ["CICLO_OUTPUT_URI"] + "/model.json", "digest": "blake3:00ab"}
open("/dev/termination-log", "w").write(json.dumps(summary))'
kc apply --server-side -f - >/dev/null <<EOF
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: soak, namespace: $ns}
spec:
  dataset: {name: bench, track: Latest}
  model: {name: soak}
  image: python:3.12
  command: [/usr/bin/python3, -c, $(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$script")]
  metrics: [{name: accuracy, direction: Maximize}]
  gates: [{metric: accuracy, threshold: 0.5}]
EOF

# wait_version <n>: until the TrainingRun has registered version <n> and runs nothing.
wait_version() {
    local deadline=$((SECONDS + timeout)) got
    while :; do
        got=$(kc -n "$ns" get trainingrun soak -o jsonpath='{.status.lastModelVersion}/{.status.currentRun.id}')
        [[ "$got" == "$1/" ]] && return 0
        ((SECONDS < deadline)) || die "iteration $1: the TrainingRun shows '$got' after ${timeout}s"
        sleep 0.2
    done
}

declare -a req_at rss_at
scrape >"$work/m0"
req_at[0]=$(requests "$work/m0")
log "iterating $iterations times (a new dataset version, a run, a ModelVersion each)"
t0=$(now)
for ((i = 1; i <= iterations; i++)); do
    # The first run trains on the Dataset's first version.
    if ((i > 1)); then accept_version "$(printf 'soak%028d' "$i")"; fi
    wait_version "$i"
    scrape >"$work/m"
    req_at[$i]=$(requests "$work/m")
    rss_at[$i]=$(rss_kib VmRSS)
    if ((i % 10 == 0)); then
        log "iteration $i: $(mib "${rss_at[$i]}") MiB, $((req_at[i] - req_at[i - 10])) requests over the last 10"
    fi
done
elapsed=$(calc "$(now) - $t0")

# Idle: the last run is recorded; give its Job's marker and the judging a moment, then watch.
sleep "$quiet"
scrape >"$work/m1"
log "idle: watching the operator's requests for ${settle}s"
sleep "$settle"
scrape >"$work/m2"
idle_writes=$(($(own_writes "$work/m2") - $(own_writes "$work/m1")))
idle_requests=$(($(requests "$work/m2") - $(requests "$work/m1")))
idle_lease=$(($(lease_writes "$work/m2") - $(lease_writes "$work/m1")))

jobs_left=$(kc -n "$ns" get jobs -l ciclo.dev/training-run=soak -o name | wc -l)
versions=$(kc -n "$ns" get modelversions -l ciclo.dev/model=soak -o name | wc -l)
last=$(kc -n "$ns" get trainingrun soak -o jsonpath='{.status.lastModelVersion}')
announced=$(kc -n "$ns" get events.events.k8s.io -o json | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)["items"]
          if e.get("reason") == "RunSucceeded" and e.get("regarding", {}).get("name") == "soak"))')

per10() { calc "($2 - $1) / 10"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kubernetes $(kc version -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'); ciclo operator (release) as a local process"
printf '%-46s %-24s %s\n' "one TrainingRun, $iterations iterations" "ciclo" "goal"
for i in 10 100 200; do
    if ((i > iterations)); then continue; fi
    printf '%-46s %-24s %s\n' "iteration $i: API requests per iteration" \
        "$(printf '%.1f' "$(per10 "${req_at[$((i - 10))]}" "${req_at[$i]}")")" "flat (iterations $((i - 9))-$i)"
    printf '%-46s %-24s %s\n' "iteration $i: operator RSS" "$(printf '%.1f MiB' "$(mib "${rss_at[$i]}")")" "flat"
done
printf '%-46s %-24s %s\n' "time per iteration (data to ModelVersion)" \
    "$(printf '%.1f s' "$(calc "$elapsed / $iterations")")" "(mean; the run's Job and pod on the process node included)"
printf '%-46s %-24s %s\n' "writes in ${settle} s idle" "$idle_writes" \
    "0: $(met "$((idle_writes == 0 ? 1 : 0))"); requests $idle_requests, Lease renewals $idle_lease"
printf '%-46s %-24s %s\n' "training Jobs left" "$jobs_left" "the history's 10: $(met "$((jobs_left <= 10 ? 1 : 0))")"
printf '%-46s %-24s %s\n' "ModelVersions, lastModelVersion" "$versions, $last" \
    "$iterations each: $(met "$((versions == iterations && last == iterations ? 1 : 0))")"
printf '%-46s %-24s %s\n' "RunSucceeded Events" "$announced" "one per run: $(met "$((announced == iterations ? 1 : 0))")"

if [[ "${BENCH_CHECK:-}" == 1 && ($idle_writes != 0 || $jobs_left -gt 10 || $versions != "$iterations" || $announced != "$iterations") ]]; then
    exit 1
fi

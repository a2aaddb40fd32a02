#!/usr/bin/env bash
# TrainingRun benchmark on the local control plane (e2e/cluster): BENCH_TRAININGRUNS (1000;
# 10000 in `make bench`) TrainingRuns applied at once, with the operator (`ciclo operator`,
# release build) running as a local process.
#
# Measured, each beside its peer or goal:
#   1. wall time from the apply until every TrainingRun's Job exists, beside the same apply
#      (`kubectl apply --server-side`, one multi-document file) of as many plain Jobs of the
#      same shape on the same cluster: the floor the API server's own write rate sets (goal:
#      within 1.5x of it);
#   2. the operator's API requests per TrainingRun until it is quiet, by verb
#      (`ciclo_kube_requests_total`) — goal <= 6, the Job, status writes and Events included —
#      and reconciles per TrainingRun (`ciclo_reconcile_runs_total`);
#   3. the operator's peak resident memory (VmHWM) — goal <= 64 MiB — beside its idle RSS
#      before the apply, and its RSS at steady state;
#   4. writes in steady state: once everything is reconciled, the write requests (create,
#      update, patch, delete) in the next BENCH_SETTLE_SECONDS — goal 0; the leader Lease's
#      renewals are shown apart (they are what keeps a standby from taking over);
#   5. a restart of the operator with the 1000 TrainingRuns in place: time until it is quiet
#      again, its requests and writes (goal 0: nothing changed), its peak RSS and the most
#      connections it held open to the API server.
#
# No training runs: every Job's pods select a node that does not exist, so they stay Pending
# and this 2-core machine only does the control plane's and the operator's work. The Dataset
# is suspended (the operator starts no check Job for it) and gets an accepted version through
# its status subresource, as a finished check would record it.
#
# The cluster: if it is not up, this starts it (e2e/cluster/up.sh, ports from the environment
# as there) and stops it again at the end; a running one is used and left running. A
# ciclo-operator Deployment scaled above 0 is scaled to 0 for the run and restored after.
# Everything the run creates (two namespaces, a temporary folder) is deleted at the end.
#
# Environment: BENCH_TRAININGRUNS (default 1000), BENCH_SETTLE_SECONDS (60), BENCH_QUIET_SECONDS
# (10: how long the operator must make no request but Lease renewals to count as done),
# BENCH_TIMEOUT_SECONDS (600), BENCH_CHECK=1 (exit 1 when a goal is missed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
count=${BENCH_TRAININGRUNS:-1000}
settle=${BENCH_SETTLE_SECONDS:-60}
quiet=${BENCH_QUIET_SECONDS:-10}
timeout=${BENCH_TIMEOUT_SECONDS:-600}
rss_goal_mib=64
requests_goal=6
jobs_ratio_goal=1.5
export KUBECONFIG=$root/.cluster/kubeconfig
kubectl=$("$root/e2e/cluster/build.sh")/kubectl
bin=${CARGO_TARGET_DIR:-$root/target}/release/ciclo
selector=app.kubernetes.io/component=training-run

ns=ciclo-bench-tr-$$
peer_ns=ciclo-bench-jobs-$$
# shellcheck source=operator-harness.sh
source "$here/operator-harness.sh"

# --- the documents ----------------------------------------------------------------------------
for ((i = 0; i < count; i++)); do
    cat <<EOF
---
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: bench-$i, namespace: $ns}
spec:
  dataset: {name: bench}
  model: {name: bench-$i}
  trainer: {algorithm: LogisticRegression, target: label}
  nodeSelector: {ciclo.dev/bench: no-such-node}
EOF
done >"$work/trainingruns.yaml"
# The peer: the Jobs themselves, as the operator builds them (labels, the same container
# with its contract environment, restricted security context), applied directly.
for ((i = 0; i < count; i++)); do
    cat <<EOF
---
apiVersion: batch/v1
kind: Job
metadata:
  name: bench-$i-run-0123456789
  namespace: $peer_ns
  labels: {app.kubernetes.io/component: bench-job, app.kubernetes.io/managed-by: ciclo-bench}
  annotations: {ciclo.dev/run-id: "0123456789", ciclo.dev/dataset-version: bench0000000000000000000000000000}
spec:
  backoffLimit: 3
  template:
    metadata:
      labels: {app.kubernetes.io/component: bench-job}
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      nodeSelector: {ciclo.dev/bench: no-such-node}
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: train
        image: ciclo-bench:none
        args: [train]
        terminationMessagePolicy: FallbackToLogsOnError
        env:
        - {name: CICLO_DATASET_URI, value: "file:///nonexistent/ciclo-bench"}
        - {name: CICLO_DATASET_VERSION, value: bench0000000000000000000000000000}
        - {name: CICLO_OUTPUT_URI, value: "file://$work/artifacts/bench/models/bench-$i/runs/0123456789"}
        - {name: CICLO_PARAMS, value: "{}"}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
EOF
done >"$work/jobs.yaml"

# wait_for_jobs <namespace> <selector> <start>: prints the seconds from <start> until <count>
# Jobs matching <selector> exist, from a watch (no polling of the API server).
wait_for_jobs() {
    local seen=$work/seen-$1 n=0 deadline=$((SECONDS + timeout))
    while :; do
        n=$(sort -u "$seen" 2>/dev/null | wc -l)
        ((n >= count)) && break
        ((SECONDS < deadline)) || die "only $n of $count Jobs in $1 after ${timeout}s"
        sleep 0.05
    done
    calc "$(now) - $3"
}
watch_jobs() {
    : >"$work/seen-$1"
    # kubectl itself in the background (not through `kc`, a function: its subshell would be
    # the pid killed at the end, and the watch would outlive the benchmark).
    "$kubectl" -n "$1" get jobs -l "$2" --watch -o name --request-timeout=0 >>"$work/seen-$1" 2>/dev/null &
    watchers+=($!)
    sleep 1 # the watch is established before the clock starts
}

# --- peer: the Jobs applied directly ----------------------------------------------------------
namespaces+=("$peer_ns")
kc create namespace "$peer_ns" >/dev/null
watch_jobs "$peer_ns" app.kubernetes.io/component=bench-job
scrape >"$work/m-peer0"
log "peer: applying $count Jobs directly"
t0=$(now)
kc apply --server-side -f "$work/jobs.yaml" >/dev/null
peer_apply=$(calc "$(now) - $t0")
peer_jobs=$(wait_for_jobs "$peer_ns" app.kubernetes.io/component=bench-job "$t0")
sleep 2
scrape >"$work/m-peer1"
# Watches renew every few minutes whatever happens: what counts is any other request.
peer_woke=$(($(requests "$work/m-peer1") - $(requests "$work/m-peer0") -
    $(metric "$work/m-peer1" ciclo_kube_requests_total 'verb="watch"') + $(metric "$work/m-peer0" ciclo_kube_requests_total 'verb="watch"')))
log "peer: $count Jobs in $peer_jobs s; the operator made $peer_woke requests but watch renewals meanwhile (other Jobs must not wake it)"
# The peer's Jobs stay, idle, until the end: the garbage collector took over half an hour to
# delete 10,000 Jobs and their Pods here, and deleting them now would run beside the
# TrainingRuns. Idle, they cost the TrainingRuns' half whatever 10,000 more pending Pods cost
# the scheduler: a comparison that can only favour the peer.

# --- the TrainingRuns -------------------------------------------------------------------------
sleep 2
idle_rss=$(rss_kib VmRSS)
scrape >"$work/m0"
watch_jobs "$ns" "$selector"
log "applying $count TrainingRuns"
t0=$(now)
kc apply --server-side -f "$work/trainingruns.yaml" >/dev/null
tr_apply=$(calc "$(now) - $t0")
tr_jobs=$(wait_for_jobs "$ns" "$selector" "$t0")
log "$count Jobs exist after $tr_jobs s (the apply took $tr_apply s)"

wait_quiet "$work/m1"
tr_quiet=$(calc "$quiet_at - $t0")
running=$(kc -n "$ns" get trainingruns -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Running")].status}{"\n"}{end}' | grep -c '^True$' || true)
log "operator quiet after $tr_quiet s; $running of $count TrainingRuns report Running"

# --- steady state -------------------------------------------------------------------------------
log "steady state: watching the operator's requests for ${settle}s"
sleep "$settle"
scrape >"$work/m2"
steady_rss=$(rss_kib VmRSS)
peak_rss=$(rss_kib VmHWM)
steady_writes=$(($(own_writes "$work/m2") - $(own_writes "$work/m1")))
steady_requests=$(($(requests "$work/m2") - $(requests "$work/m1")))
steady_lease=$(($(lease_writes "$work/m2") - $(lease_writes "$work/m1")))
reconciles=$(($(metric "$work/m1" ciclo_reconcile_runs_total 'kind="TrainingRun"') - $(metric "$work/m0" ciclo_reconcile_runs_total 'kind="TrainingRun"')))
steady_reconciles=$(($(metric "$work/m2" ciclo_reconcile_runs_total) - $(metric "$work/m1" ciclo_reconcile_runs_total)))
failures=$(($(metric "$work/m2" ciclo_reconcile_failures_total) - $(metric "$work/m0" ciclo_reconcile_failures_total)))

# --- a restart with everything in place ---------------------------------------------------------
log "restarting the operator with the $count TrainingRuns in place"
stop_operator
t0=$(now)
start_operator
wait_for_leader
wait_quiet "$work/m3"
restart_quiet=$(calc "$quiet_at - $t0")
restart_requests=$(requests "$work/m3")
restart_writes=$(own_writes "$work/m3")
restart_rss=$(rss_kib VmHWM)
restart_sockets=$max_sockets

# Requests per TrainingRun from the apply until quiet, by verb, the Lease's left out.
per_verb=$(by_verb "$work/m0" "$work/m1" "$count")
per_resource=$(by_resource "$work/m0" "$work/m1" "$count")
total=$(($(requests "$work/m1") - $(requests "$work/m0")))

rss_met=$(met "$(calc "($peak_rss / 1024 <= $rss_goal_mib && $restart_rss / 1024 <= $rss_goal_mib) ? 1 : 0")")
requests_met=$(met "$(calc "($total / $count <= $requests_goal) ? 1 : 0")")
jobs_met=$(met "$(calc "($tr_jobs / $peer_jobs <= $jobs_ratio_goal) ? 1 : 0")")
writes_met=$(met "$((steady_writes == 0 ? 1 : 0))")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kubernetes $(kc version -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'); ciclo operator (release) as a local process"
printf '%-44s %-26s %s\n' "$count TrainingRuns" "ciclo" "peer / goal"
printf '%-44s %-26s %s\n' "all Jobs exist (from the apply)" "$(printf '%.1f s' "$tr_jobs")" \
    "$(printf '%.1f s: %d Jobs applied directly (%.2fx; goal <= %sx: %s)' "$peer_jobs" "$count" "$(calc "$tr_jobs / $peer_jobs")" "$jobs_ratio_goal" "$jobs_met")"
printf '%-44s %-26s %s\n' "  of which kubectl apply (client side)" "$(printf '%.1f s' "$tr_apply")" "$(printf '%.1f s' "$peer_apply")"
printf '%-44s %-26s %s\n' "operator done (no request for ${quiet} s)" "$(printf '%.1f s' "$tr_quiet")" "$running of $count report Running"
printf '%-44s %-26s %s\n' "API requests per TrainingRun" "$(printf '%.2f' "$(calc "$total / $count")")" "goal <= $requests_goal: $requests_met; $per_verb"
printf '%-44s %-26s %s\n' "reconciles per TrainingRun" "$(printf '%.2f' "$(calc "$reconciles / $count")")" "failed reconciles: $failures"
printf '%-44s %-26s %s\n' "operator peak RSS (VmHWM)" "$(printf '%.1f MiB' "$(mib "$peak_rss")")" \
    "$(printf 'goal <= %d MiB (and after a restart): %s; idle before the apply %.1f MiB' "$rss_goal_mib" "$rss_met" "$(mib "$idle_rss")")"
printf '%-44s %-26s %s\n' "operator RSS in steady state" "$(printf '%.1f MiB' "$(mib "$steady_rss")")" ""
printf '%-44s %-26s %s\n' "writes in ${settle} s of steady state" "$steady_writes" \
    "goal 0: $writes_met; requests $steady_requests, reconciles $steady_reconciles, Lease renewals $steady_lease"
printf '%-44s %-26s %s\n' "operator requests while the peer ran" "$peer_woke" "(its Jobs are not ciclo's: 0 expected; watch renewals apart)"
printf '%-44s %-26s %s\n' "restart: done (no request for ${quiet} s)" "$(printf '%.1f s' "$restart_quiet")" \
    "$(printf '%.2f requests per TrainingRun, %d writes (goal 0)' "$(calc "$restart_requests / $count")" "$restart_writes")"
printf '%-44s %-26s %s\n' "restart: peak RSS (VmHWM)" "$(printf '%.1f MiB' "$(mib "$restart_rss")")" \
    "at most $restart_sockets sockets open (--max-concurrent-reconciles ${CICLO_MAX_CONCURRENT_RECONCILES:-32})"
echo "requests per TrainingRun by verb and resource: $per_resource"

if [[ "${BENCH_CHECK:-}" == 1 && ("$rss_met" != met || "$writes_met" != met || "$restart_writes" != 0 ||
    "$requests_met" != met || "$jobs_met" != met) ]]; then
    exit 1
fi

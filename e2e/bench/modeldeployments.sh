#!/usr/bin/env bash
# ModelDeployment benchmark on the local control plane (e2e/cluster): BENCH_MODELDEPLOYMENTS
# (1000) ModelDeployments applied at once, each serving its own model's blessed version, with
# the operator (`ciclo operator`, release build) running as a local process.
#
# Measured, each beside its peer or goal:
#   1. wall time from the apply until every ModelDeployment's Deployment exists, beside the
#      same apply (`kubectl apply --server-side`, one multi-document file) of as many plain
#      Service + Deployment pairs of the same shape on the same cluster: the floor the API
#      server's own write rate sets (goal: within 1.5x of it); and, for both, the time until
#      every pod exists (the controller-manager's pace: minutes at 1000);
#   2. the operator's API requests per ModelDeployment from the apply until it has settled
#      (every pod exists, and no request or reconcile for BENCH_QUIET_SECONDS), by verb and
#      resource (`ciclo_kube_requests_total`), beside the least it could make (the Service and
#      the Deployment applied, the status written, one Event: 4), and reconciles per
#      ModelDeployment (`ciclo_reconcile_runs_total`);
#   3. the pods' ready deadline: no serving pod can become ready here, so 300 s after each
#      rollout started (rollout.rs READY_DEADLINE) the operator marks the ModelDeployment
#      Degraded (Stalled: PodsNotReady): its requests per ModelDeployment then, and its
#      requests until then while every rollout waits (writes: goal 0);
#   4. the operator's peak resident memory (VmHWM, reset at the apply: the ModelVersions'
#      judging before has its own, shown apart) — goal <= 64 MiB — beside its idle RSS (before
#      the ModelVersions, and before the apply), and its RSS at steady state;
#   5. writes in steady state: once everything is Degraded and the operator makes no request
#      and starts no reconcile, the write requests in the next BENCH_SETTLE_SECONDS — goal 0;
#      the Lease's renewals apart;
#   6. a restart of the operator with the ModelDeployments in place: time until it is quiet
#      again, its requests and writes (goal 0: nothing changed), its peak RSS.
#
# Nothing serves: every serving pod asks for one `ciclo.dev/bench-no-such-resource`, an
# extended resource no node has (the ModelDeployment spec has no nodeSelector; `resources` is
# the field it has that the Deployment carries to its pods), so the pods stay Pending and this
# 2-core machine only does the control plane's and the operator's work. The peer's pods ask
# for the same, and the ModelDeployments' half starts only once the controller-manager is done
# with the peer's (their pods exist), as the peer's started on an idle one. Each ModelDeployment follows the latest blessed version of a model of its own;
# that model's one ModelVersion is created first, registered with no gates (the annotation a
# TrainingRun registers with), and judged (blessed) and recorded by the operator itself before
# anything is measured.
#
# The cluster: if it is not up, this starts it (e2e/cluster/up.sh, ports from the environment
# as there) and stops it again at the end; a running one is used and left running. A
# ciclo-operator Deployment scaled above 0 is scaled to 0 for the run and restored after.
# Everything the run creates (two namespaces, a temporary folder) is deleted at the end.
#
# Environment: BENCH_MODELDEPLOYMENTS (default 1000), BENCH_SETTLE_SECONDS (60),
# BENCH_QUIET_SECONDS (10: how long the operator must make no request but Lease renewals to
# count as done), BENCH_TIMEOUT_SECONDS (600), BENCH_READY_DEADLINE (1: wait for the pods'
# ready deadline and measure steady state and the restart after it; 0: skip it, for a quick
# run: steady state and the restart are then measured while the rollouts wait, and must end
# within 300 s of the apply), BENCH_CHECK=1 (exit 1 when a goal is missed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
count=${BENCH_MODELDEPLOYMENTS:-1000}
settle=${BENCH_SETTLE_SECONDS:-60}
quiet=${BENCH_QUIET_SECONDS:-10}
timeout=${BENCH_TIMEOUT_SECONDS:-600}
deadline_phase=${BENCH_READY_DEADLINE:-1}
# operator/controller/src/controllers/model_deployment/rollout.rs READY_DEADLINE
ready_deadline=300
rss_goal_mib=64
requests_minimum=4
deployments_ratio_goal=1.5
export KUBECONFIG=$root/.cluster/kubeconfig
kubectl=$("$root/e2e/cluster/build.sh")/kubectl
bin=${CARGO_TARGET_DIR:-$root/target}/release/ciclo
selector=app.kubernetes.io/component=model-server
peer_selector=app.kubernetes.io/component=bench-model-server
# The resource no node has.
unschedulable='ciclo.dev/bench-no-such-resource'
digest=blake3:$(printf '0%.0s' {1..64})

ns=ciclo-bench-md-$$
peer_ns=ciclo-bench-deployments-$$
# shellcheck source=operator-harness.sh
source "$here/operator-harness.sh"

# --- the documents ----------------------------------------------------------------------------
# One model per ModelDeployment, with one version, registered as a TrainingRun registers it
# (its labels, the gates annotation: no gates, so it is blessed) but without a TrainingRun.
for ((i = 0; i < count; i++)); do
    cat <<EOF
---
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata:
  name: bench-$i-1
  namespace: $ns
  labels: {ciclo.dev/model: bench-$i, ciclo.dev/version: "1"}
  annotations: {ciclo.dev/gates: '{"gates":[],"metrics":[]}'}
spec:
  model: bench-$i
  version: 1
  artifact: {uri: "file://$work/artifacts/$ns/models/bench-$i/runs/0123456789/model.json", digest: "$digest", format: ciclo.dev/model/v1}
  lineage: {trainingRun: bench-$i, runId: "0123456789", dataset: {name: bench, version: bench0000000000000000000000000000}, image: ciclo-bench:none}
EOF
done >"$work/modelversions.yaml"
# The ModelDeployments: the defaults (the newest blessed version, one replica, Rolling, the
# built-in server), and the resource no node has.
for ((i = 0; i < count; i++)); do
    cat <<EOF
---
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: bench-$i, namespace: $ns}
spec:
  model: {name: bench-$i}
  resources: {limits: {$unschedulable: "1"}}
EOF
done >"$work/modeldeployments.yaml"
# The peer: the Service and the Deployment themselves, as the operator builds them (labels, the
# same container with its contract environment, probes and ports, restricted security
# context), applied directly; only the component label differs, so the operator's watch of
# serving Deployments and pods does not see them, and there is no owner.
for ((i = 0; i < count; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Service
metadata:
  name: bench-$i
  namespace: $peer_ns
  labels: {ciclo.dev/deployment: bench-$i, app.kubernetes.io/managed-by: ciclo-bench}
spec:
  selector: {ciclo.dev/deployment: bench-$i}
  ports:
  - {name: http, port: 8080, targetPort: http}
  - {name: grpc, port: 8081, targetPort: grpc, appProtocol: kubernetes.io/h2c}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench-$i-v1
  namespace: $peer_ns
  labels: &labels {ciclo.dev/deployment: bench-$i, ciclo.dev/model: bench-$i, ciclo.dev/version: "1", app.kubernetes.io/managed-by: ciclo-bench, app.kubernetes.io/component: bench-model-server}
spec:
  replicas: 1
  selector:
    matchLabels: {ciclo.dev/deployment: bench-$i, ciclo.dev/version: "1"}
  strategy: {type: RollingUpdate}
  template:
    metadata:
      labels: *labels
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 30
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: server
        image: ciclo-bench:none
        args: [serve, "--address=\$(CICLO_POD_IP)", --port=8080, --grpc-port=8081]
        env:
        - {name: CICLO_POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: CICLO_MODEL_URI, value: "file://$work/artifacts/$ns/models/bench-$i/runs/0123456789/model.json"}
        - {name: CICLO_MODEL_DIGEST, value: "$digest"}
        - {name: CICLO_MODEL_NAME, value: bench-$i}
        - {name: CICLO_MODEL_VERSION, value: "1"}
        - {name: CICLO_PORT, value: "8080"}
        - {name: CICLO_MODEL_FORMAT, value: ciclo.dev/model/v1}
        ports:
        - {name: http, containerPort: 8080}
        - {name: grpc, containerPort: 8081}
        readinessProbe: {httpGet: {path: /v2/health/ready, port: 8080}, periodSeconds: 1, failureThreshold: 3}
        livenessProbe: {httpGet: {path: /v2/health/live, port: 8080}, periodSeconds: 10, failureThreshold: 3}
        resources: {limits: {$unschedulable: "1"}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
EOF
done >"$work/deployments.yaml"

# watch_names <kind> <namespace> <selector>: starts recording the names of the <kind> matching
# <selector> in <namespace> as a watch sees them.
watch_names() {
    : >"$work/seen-$1-$2"
    # kubectl itself in the background (not through `kc`, a function: its subshell would be
    # the pid killed at the end, and the watch would outlive the benchmark).
    "$kubectl" -n "$2" get "$1" -l "$3" --watch -o name --request-timeout=0 >>"$work/seen-$1-$2" 2>/dev/null &
    watchers+=($!)
}
# wait_for_names <kind> <namespace> <start>: prints the seconds from <start> until <count>
# <kind> were seen in <namespace> (no polling of the API server).
wait_for_names() {
    local seen=$work/seen-$1-$2 n=0 deadline=$((SECONDS + timeout))
    while :; do
        n=$(sort -u "$seen" 2>/dev/null | wc -l)
        ((n >= count)) && break
        ((SECONDS < deadline)) || die "only $n of $count $1 in $2 after ${timeout}s"
        sleep 0.05
    done
    calc "$(now) - $3"
}
# wait_settled <namespace> <selector>: waits until the controller-manager is done with the
# Deployments matching <selector>: each reports its one pod, unavailable (the pod is Pending).
# Its controllers write at 20 requests per second each (their client's default), so this comes
# minutes after the Deployments exist.
wait_settled() {
    local n deadline=$((SECONDS + timeout))
    while :; do
        n=$(kc -n "$1" get deployments -l "$2" -o jsonpath='{range .items[*]}{.status.replicas}/{.status.unavailableReplicas}{"\n"}{end}' | grep -c '^1/1$' || true)
        ((n >= count)) && return 0
        ((SECONDS < deadline)) || die "only $n of $count Deployments in $1 report their pod after ${timeout}s"
        sleep 2
    done
}
# reasons <condition type>: how many ModelDeployments have each reason of that condition
# when it is True ("1000 RollingOut").
reasons() {
    kc -n "$ns" get modeldeployments -o jsonpath="{range .items[*]}{.status.conditions[?(@.type==\"$1\")].status}/{.status.conditions[?(@.type==\"$1\")].reason}{\"\\n\"}{end}" |
        awk -F/ '$1 == "True" { n[$2]++ } END { for (r in n) printf "%s%d %s", (s++ ? ", " : ""), n[r], r }'
}
# reset_hwm: resets the operator's peak resident memory (VmHWM) to its resident memory now.
reset_hwm() { echo 5 >"/proc/$op_pid/clear_refs"; }
# cpu_seconds: the CPU time (user and system) the operator process has used.
cpu_seconds() { sed 's/.*) //' "/proc/$op_pid/stat" | awk -v hz="$(getconf CLK_TCK)" '{ print ($12 + $13) / hz }'; }
# watch_renewals <from scrape> <to scrape>: the watch requests between two scrapes (a
# watcher's renewal every few minutes, whatever happens).
watch_renewals() {
    echo $(($(metric "$2" ciclo_kube_requests_total 'verb="watch"') - $(metric "$1" ciclo_kube_requests_total 'verb="watch"')))
}

# reconciles_by_kind <from scrape> <to scrape>: the reconciles between two scrapes by kind
# ("ModelDeployment 12, ModelVersion 1").
reconciles_by_kind() {
    awk '
        FNR == 1 { f++ }
        /^ciclo_reconcile_runs_total\{/ {
            match($0, /kind="[^"]*"/); k = substr($0, RSTART + 6, RLENGTH - 7)
            if (f == 1) a[k] -= $NF; else a[k] += $NF
        }
        END { for (k in a) if (a[k] != 0) printf "%s%s %d", (s++ ? ", " : ""), k, a[k] }' "$1" "$2"
}

# --- the ModelVersions, judged and recorded by the operator -------------------------------------
sleep 2
first_rss=$(rss_kib VmRSS)
scrape >"$work/mv0"
log "registering $count ModelVersions (one per model) for the operator to judge and record"
t0=$(now)
kc apply --server-side -f "$work/modelversions.yaml" >/dev/null
wait_quiet "$work/mv1"
mv_quiet=$(calc "$quiet_at - $t0")
recorded=$(kc -n "$ns" get modelversions -o jsonpath='{range .items[*]}{.status.blessed}/{.status.record}{"\n"}{end}' | grep -c '^true/.' || true)
((recorded == count)) || die "only $recorded of $count ModelVersions are blessed and recorded once the operator is quiet"
mv_requests=$(($(requests "$work/mv1") - $(requests "$work/mv0")))
mv_by_resource=$(by_resource "$work/mv0" "$work/mv1" "$count")
log "$count ModelVersions blessed and recorded after $mv_quiet s ($(calc "$mv_requests / $count") requests each)"

# --- peer: the Services and Deployments applied directly ---------------------------------------
namespaces+=("$peer_ns")
kc create namespace "$peer_ns" >/dev/null
watch_names deployments "$peer_ns" "$peer_selector"
watch_names pods "$peer_ns" "$peer_selector"
sleep 1 # the watches are established before the clock starts
scrape >"$work/m-peer0"
log "peer: applying $count Services and Deployments directly"
t0=$(now)
kc apply --server-side -f "$work/deployments.yaml" >/dev/null
peer_apply=$(calc "$(now) - $t0")
peer_deployments=$(wait_for_names deployments "$peer_ns" "$t0")
log "peer: $count Deployments exist after $peer_deployments s; waiting for their pods (the controller-manager)"
peer_pods=$(wait_for_names pods "$peer_ns" "$t0")
wait_settled "$peer_ns" "$peer_selector"
scrape >"$work/m-peer1"
# Watches renew every few minutes whatever happens: what counts is any other request.
peer_woke=$(($(requests "$work/m-peer1") - $(requests "$work/m-peer0") - $(watch_renewals "$work/m-peer0" "$work/m-peer1")))
log "peer: $count pods after $peer_pods s; the operator made $peer_woke requests but watch renewals meanwhile (other Deployments must not wake it)"
# The peer's objects stay, idle, until the end (as in trainingruns.sh): whatever their pending
# Pods cost the scheduler is a cost to the ModelDeployments' half only. Its half starts once
# the controller-manager is done with the peer's, as the peer's started on an idle one.

# --- the ModelDeployments -------------------------------------------------------------------------
sleep 2
idle_rss=$(rss_kib VmRSS)
scrape >"$work/m0"
cpu0=$(cpu_seconds)
# The ModelDeployments' own peak: the ModelVersions' judging (the setup) had its own before.
setup_hwm=$(rss_kib VmHWM)
reset_hwm
watch_names deployments "$ns" "$selector"
watch_names pods "$ns" "$selector"
sleep 1
log "applying $count ModelDeployments"
t0=$(now)
kc apply --server-side -f "$work/modeldeployments.yaml" >/dev/null
md_apply=$(calc "$(now) - $t0")
md_deployments=$(wait_for_names deployments "$ns" "$t0")
log "$count Deployments exist after $md_deployments s (the apply took $md_apply s)"
wait_quiet "$work/m1a"
md_quiet=$(calc "$quiet_at - $t0")
services=$(kc -n "$ns" get services -l ciclo.dev/deployment -o name | wc -l)
log "operator quiet after $md_quiet s; $services Services; waiting for the pods (the controller-manager)"
md_pods=$(wait_for_names pods "$ns" "$t0")
wait_settled "$ns" "$selector"
# Each pod, and each Deployment's status, wakes its ModelDeployment: done is when neither
# requests nor reconciles come any more.
wait_quiet "$work/m1" reconciles
md_settled=$(calc "$quiet_at - $t0")
md_cpu=$(calc "$(cpu_seconds) - $cpu0")
rolling=$(reasons Reconciling)
log "$count pods after $md_pods s; the operator settled after $md_settled s; Reconciling: ${rolling:-none}"
reconciles=$(($(metric "$work/m1" ciclo_reconcile_runs_total 'kind="ModelDeployment"') - $(metric "$work/m0" ciclo_reconcile_runs_total 'kind="ModelDeployment"')))
total=$(($(requests "$work/m1") - $(requests "$work/m0")))
per_verb=$(by_verb "$work/m0" "$work/m1" "$count")
per_resource=$(by_resource "$work/m0" "$work/m1" "$count")
(($(calc "($md_settled >= $ready_deadline) ? 1 : 0"))) &&
    log "NOTE: the cluster settled only past the pods' ready deadline (${ready_deadline}s): the creation's requests include some Degraded transitions"

# --- the pods' ready deadline -------------------------------------------------------------------
if [[ "$deadline_phase" == 1 ]]; then
    # Every rollout started after t0, so none reaches its deadline before t0 + 300 s.
    wait_s=$(calc "$t0 + $ready_deadline - $(now)")
    if (($(calc "($wait_s > 0) ? 1 : 0"))); then
        log "waiting $(printf '%.0f' "$wait_s") s for the first rollout's ready deadline (${ready_deadline}s after the apply)"
        sleep "$wait_s"
    fi
    scrape >"$work/m1b"
    waiting_requests=$(($(requests "$work/m1b") - $(requests "$work/m1")))
    waiting_writes=$(($(own_writes "$work/m1b") - $(own_writes "$work/m1")))
    waiting_watches=$(watch_renewals "$work/m1" "$work/m1b")
    waiting_reconciles=$(($(metric "$work/m1b" ciclo_reconcile_runs_total) - $(metric "$work/m1" ciclo_reconcile_runs_total)))
    waiting_seconds=$(calc "$(now) - $quiet_at")
    log "until the deadline: $waiting_requests requests ($waiting_watches watch renewals), $waiting_writes writes"
    deadline_end=$((SECONDS + timeout))
    until [[ "$(reasons Stalled)" == "$count PodsNotReady" ]]; do
        ((SECONDS < deadline_end)) || die "not every ModelDeployment is Stalled (PodsNotReady) after ${timeout}s: $(reasons Stalled)"
        sleep 5
    done
    wait_quiet "$work/m2" reconciles
    deadline_requests=$(($(requests "$work/m2") - $(requests "$work/m1b")))
    deadline_resource=$(by_resource "$work/m1b" "$work/m2" "$count")
    stalled=$(reasons Stalled)
    log "every ModelDeployment Degraded: $stalled ($deadline_requests requests)"
else
    cp "$work/m1" "$work/m2"
fi

# --- steady state -------------------------------------------------------------------------------
log "steady state: watching the operator's requests for ${settle}s"
sleep "$settle"
scrape >"$work/m3"
steady_rss=$(rss_kib VmRSS)
peak_rss=$(rss_kib VmHWM)
steady_writes=$(($(own_writes "$work/m3") - $(own_writes "$work/m2")))
steady_requests=$(($(requests "$work/m3") - $(requests "$work/m2")))
steady_lease=$(($(lease_writes "$work/m3") - $(lease_writes "$work/m2")))
steady_reconciles=$(($(metric "$work/m3" ciclo_reconcile_runs_total) - $(metric "$work/m2" ciclo_reconcile_runs_total)))
steady_kinds=$(reconciles_by_kind "$work/m2" "$work/m3")
failures=$(($(metric "$work/m3" ciclo_reconcile_failures_total) - $(metric "$work/m0" ciclo_reconcile_failures_total)))

# --- a restart with everything in place ---------------------------------------------------------
log "restarting the operator with the $count ModelDeployments in place"
stop_operator
t1=$(now)
start_operator
wait_for_leader
wait_quiet "$work/m4"
restart_quiet=$(calc "$quiet_at - $t1")
restart_requests=$(requests "$work/m4")
restart_writes=$(own_writes "$work/m4")
restart_resource=$(awk '/^ciclo_kube_requests_total\{/ && !/resource="leases"/ && $NF > 0 {
        match($0, /verb="[^"]*"/); v = substr($0, RSTART + 6, RLENGTH - 7)
        match($0, /resource="[^"]*"/); r = substr($0, RSTART + 10, RLENGTH - 11)
        print v " " r " " $NF }' "$work/m4" | sort | paste -sd ';' | sed 's/;/; /g')
restart_rss=$(rss_kib VmHWM)
restart_sockets=$max_sockets
restart_cpu=$(cpu_seconds)
if [[ "$deadline_phase" != 1 ]] && (($(calc "($(now) - $t0 >= $ready_deadline) ? 1 : 0"))); then
    log "NOTE: the run went past the pods' ready deadline (${ready_deadline}s after the apply): steady state or the restart may include Degraded transitions"
fi

rss_met=$(met "$(calc "($peak_rss / 1024 <= $rss_goal_mib && $restart_rss / 1024 <= $rss_goal_mib) ? 1 : 0")")
deployments_met=$(met "$(calc "($md_deployments / $peer_deployments <= $deployments_ratio_goal) ? 1 : 0")")
writes_met=$(met "$((steady_writes == 0 ? 1 : 0))")
restart_met=$(met "$((restart_writes == 0 ? 1 : 0))")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kubernetes $(kc version -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'); ciclo operator (release) as a local process"
printf '%-44s %-26s %s\n' "$count ModelDeployments" "ciclo" "peer / goal"
printf '%-44s %-26s %s\n' "all Deployments exist (from the apply)" "$(printf '%.1f s' "$md_deployments")" \
    "$(printf '%.1f s: %d Services + Deployments applied directly (%.2fx; goal <= %sx: %s)' "$peer_deployments" "$count" "$(calc "$md_deployments / $peer_deployments")" "$deployments_ratio_goal" "$deployments_met")"
printf '%-44s %-26s %s\n' "  of which kubectl apply (client side)" "$(printf '%.1f s' "$md_apply")" "$(printf '%.1f s' "$peer_apply")"
printf '%-44s %-26s %s\n' "operator done (no request for ${quiet} s)" "$(printf '%.1f s' "$md_quiet")" "$services Services; Reconciling: ${rolling:-none}"
printf '%-44s %-26s %s\n' "all pods exist (Pending)" "$(printf '%.1f s' "$md_pods")" \
    "$(printf "%.1f s (the controller-manager's pace); the operator settled (no reconcile either) after %.1f s" "$peer_pods" "$md_settled")"
printf '%-44s %-26s %s\n' "API requests per ModelDeployment" "$(printf '%.2f' "$(calc "$total / $count")")" "minimum $requests_minimum (Service, Deployment, status, Event); $per_verb"
printf '%-44s %-26s %s\n' "reconciles per ModelDeployment" "$(printf '%.2f' "$(calc "$reconciles / $count")")" "failed reconciles: $failures"
printf '%-44s %-26s %s\n' "operator CPU time, apply to settled" "$(printf '%.1f s' "$md_cpu")" "$(printf '%.1f ms per ModelDeployment (user + system)' "$(calc "$md_cpu * 1000 / $count")")"
if [[ "$deadline_phase" == 1 ]]; then
    printf '%-44s %-26s %s\n' "writes while the rollouts wait" "$waiting_writes" \
        "$(printf 'goal 0: %s; in %.0f s: requests %d (watch renewals %d), reconciles %d' "$(met "$((waiting_writes == 0 ? 1 : 0))")" "$waiting_seconds" "$waiting_requests" "$waiting_watches" "$waiting_reconciles")"
    printf '%-44s %-26s %s\n' "ready deadline (${ready_deadline} s): requests per MD" "$(printf '%.2f' "$(calc "$deadline_requests / $count")")" "Stalled: $stalled; $deadline_resource"
fi
printf '%-44s %-26s %s\n' "operator peak RSS (VmHWM) from the apply" "$(printf '%.1f MiB' "$(mib "$peak_rss")")" \
    "$(printf 'goal <= %d MiB (and after a restart): %s; idle %.1f MiB, %.1f MiB before the apply' "$rss_goal_mib" "$rss_met" "$(mib "$first_rss")" "$(mib "$idle_rss")")"
printf '%-44s %-26s %s\n' "operator RSS in steady state" "$(printf '%.1f MiB' "$(mib "$steady_rss")")" ""
printf '%-44s %-26s %s\n' "writes in ${settle} s of steady state" "$steady_writes" \
    "goal 0: $writes_met; requests $steady_requests, reconciles $steady_reconciles${steady_kinds:+ ($steady_kinds)}, Lease renewals $steady_lease"
printf '%-44s %-26s %s\n' "operator requests while the peer ran" "$peer_woke" "(its Deployments are not ciclo's: 0 expected; watch renewals apart)"
printf '%-44s %-26s %s\n' "restart: done (no request for ${quiet} s)" "$(printf '%.1f s' "$restart_quiet")" \
    "$(printf '%.2f requests per ModelDeployment, %d writes (goal 0: %s)' "$(calc "$restart_requests / $count")" "$restart_writes" "$restart_met")"
printf '%-44s %-26s %s\n' "restart: peak RSS (VmHWM)" "$(printf '%.1f MiB' "$(mib "$restart_rss")")" \
    "$(printf 'at most %d sockets open (--max-concurrent-reconciles %s); CPU time %.1f s' "$restart_sockets" "${CICLO_MAX_CONCURRENT_RECONCILES:-32}" "$restart_cpu")"
printf '%-44s %-26s %s\n' "setup: $count ModelVersions judged, recorded" "$(printf '%.1f s' "$mv_quiet")" \
    "$(printf '%.2f requests per ModelVersion, peak RSS %.1f MiB (not measured against a goal)' "$(calc "$mv_requests / $count")" "$(mib "$setup_hwm")")"
echo "requests per ModelDeployment by verb and resource: $per_resource"
echo "restart: requests by verb and resource: ${restart_resource:-none}"
echo "setup: requests per ModelVersion by verb and resource: $mv_by_resource"

if [[ "${BENCH_CHECK:-}" == 1 && ("$rss_met" != met || "$writes_met" != met || "$restart_met" != met ||
    "$deployments_met" != met || "${waiting_writes:-0}" != 0) ]]; then
    exit 1
fi

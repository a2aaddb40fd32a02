# The harness the operator benchmarks share (sourced by trainingruns.sh, modeldeployments.sh
# and soak.sh): the
# release build, the local cluster (started if it is not up, stopped again at the end), the
# CRDs, no other ciclo operator (scaled to 0 and restored), the operator as a local process
# with its metrics, and a suspended Dataset whose versions the benchmark records itself.
#
# The sourcing script sets: root, kubectl, bin, ns (the namespace to run in), quiet, timeout,
# and optionally operator_args (more flags for `ciclo operator`).
# It gets: log, die, calc, now, kc, work, watchers, namespaces, start_operator, stop_operator,
# scrape, metric, requests, own_writes, lease_writes, rss_kib, mib, wait_for_leader,
# accept_version, wait_quiet, by_verb, by_resource, met, and a running operator that leads,
# over the Dataset `bench` in $ns.

log() { echo "bench: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
calc() { awk "BEGIN {print $*}"; }
now() { date +%s.%N; }
kc() { "$kubectl" --request-timeout=60s "$@"; }

work=$(mktemp -d)
op_pid=
started_cluster=false
scaled_down=()
watchers=()
# The namespaces the benchmark creates, deleted at the end.
namespaces=()
# The cluster-scoped objects it creates (the operator's ClusterRole and its binding).
cluster_rbac=()

cleanup() {
    local code=$?
    set +e
    for w in "${watchers[@]}"; do kill "$w" 2>/dev/null; done
    if [[ -n "$op_pid" ]]; then
        kill -TERM "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
    fi
    if [[ -f "$KUBECONFIG" ]] && kc get --raw /readyz >/dev/null 2>&1; then
        if ((${#namespaces[@]})); then
            # Not waited for: at 10,000 Jobs the garbage collector takes over half an hour.
            log "deleting namespaces ${namespaces[*]} (their TrainingRuns, Jobs and Pods; in the background)"
            kc delete namespace "${namespaces[@]}" --ignore-not-found --wait=false >/dev/null
        fi
        if ((${#cluster_rbac[@]})); then
            kc delete "${cluster_rbac[@]}" --ignore-not-found >/dev/null
        fi
        for d in "${scaled_down[@]}"; do
            log "restoring deployment ${d%=*} to ${d##*=} replicas"
            kc -n "${d%%/*}" scale "deployment/$(basename "${d%=*}")" --replicas="${d##*=}" >/dev/null
        done
    fi
    if $started_cluster; then
        log "stopping the cluster this benchmark started"
        "$root/e2e/cluster/down.sh"
    fi
    rm -rf "$work"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building ciclo (release)"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p ciclo

# --- the cluster, the CRDs, no other operator -----------------------------------------------
if [[ -f "$KUBECONFIG" ]] && kc get --raw /readyz >/dev/null 2>&1; then
    log "using the running cluster ($KUBECONFIG)"
else
    # The process node: the operator under test runs on the host here, beside its S3 store,
    # and the node's pods cost what host processes cost, not what containers add
    # (docs/local-cluster.md). CLUSTER_NODE=kubelet runs them in containers instead.
    log "starting the local cluster (e2e/cluster/up.sh, ${CLUSTER_NODE:-process} node); it is stopped again at the end"
    started_cluster=true
    CLUSTER_NODE=${CLUSTER_NODE:-process} "$root/e2e/cluster/up.sh"
fi
# (kubectl warns about the schemas' integer formats; shown only if the apply fails.)
crds_out=$(kc apply --server-side --force-conflicts -f "$root/crds/ciclo.dev.yaml" 2>&1) ||
    die "applying the CRDs failed: $crds_out"
kc wait --for=condition=Established --timeout=60s -f "$root/crds/ciclo.dev.yaml" >/dev/null
while read -r dns name replicas; do
    [[ -n "$name" && "$replicas" -gt 0 ]] || continue
    log "scaling deployment $dns/$name from $replicas to 0 replicas for the benchmark"
    kc -n "$dns" scale "deployment/$name" --replicas=0 >/dev/null
    scaled_down+=("$dns/$name=$replicas")
    kc -n "$dns" wait --for=delete pod -l app.kubernetes.io/name=ciclo-operator --timeout=120s >/dev/null 2>&1 || true
done < <(kc get deployments -A --field-selector metadata.name=ciclo-operator \
    -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name} {.spec.replicas}{"\n"}{end}')

# --- the operator, local, idle --------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics_url=http://127.0.0.1:$port/metrics
namespaces+=("$ns")
kc create namespace "$ns" >/dev/null

# --- the operator's credentials ---------------------------------------------------------------
# As in a cluster: the operator is a ServiceAccount with the chart's ClusterRole and
# leader-election Role (manifests/base/ciclo.yaml, renamed for this run), and presents its
# token. So every request is authorized by RBAC against the rules the chart ships, and
# authenticated as an operator in a cluster is, with a token whose check the API server
# caches, not with the admin kubeconfig's client certificate (verified on every request, and
# in a group RBAC does not check). BENCH_OPERATOR_AS=admin runs it with the admin kubeconfig.
operator_kubeconfig=$KUBECONFIG
rbac_name=ciclo-bench-$$
if [[ "${BENCH_OPERATOR_AS:-serviceaccount}" != admin ]]; then
    python3 - "$root/manifests/base/ciclo.yaml" "$rbac_name" "$ns" >"$work/rbac.yaml" <<'PY'
import sys, yaml
path, name, ns = sys.argv[1:]
sa = {"kind": "ServiceAccount", "name": "ciclo-operator", "namespace": ns}
out = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ciclo-operator", "namespace": ns}}]
for doc in yaml.safe_load_all(open(path)):
    if doc and doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == "ciclo-operator":
        out.append({**doc, "metadata": {"name": name}})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": [sa]})
    if doc and doc["kind"] == "Role" and doc["metadata"]["name"] == "ciclo-operator-leader-election":
        out.append({**doc, "metadata": {"name": name, "namespace": ns}})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}, "subjects": [sa]})
if len(out) != 5:
    sys.exit(f"{path}: expected the ClusterRole ciclo-operator and the Role ciclo-operator-leader-election")
yaml.safe_dump_all(out, sys.stdout)
PY
    cluster_rbac+=("clusterrole/$rbac_name" "clusterrolebinding/$rbac_name")
    kc apply -f "$work/rbac.yaml" >/dev/null
    operator_kubeconfig=$work/operator.kubeconfig
    kc config view --raw --minify -o json | python3 -c '
import json, sys
c = json.load(sys.stdin)
cluster = c["clusters"][0]
token = sys.argv[1]
print(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "operator",
    "clusters": [cluster], "users": [{"name": "operator", "user": {"token": token}}],
    "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}]}))
' "$(kc -n "$ns" create token ciclo-operator --duration=24h)" >"$operator_kubeconfig"
    chmod 600 "$operator_kubeconfig"
    log "the operator runs as ServiceAccount $ns/ciclo-operator with the chart's RBAC (BENCH_OPERATOR_AS=admin: the admin kubeconfig)"
fi
start_operator() {
    log "starting the operator (log: $work/operator.log)"
    KUBECONFIG=$operator_kubeconfig RUST_LOG=${RUST_LOG:-info} "$bin" operator \
        --metrics-bind-address "127.0.0.1:$port" \
        --leader-election-namespace "$ns" \
        --artifact-store "file://$work/artifacts" \
        --image ciclo-bench:none ${operator_args[@]+"${operator_args[@]}"} >>"$work/operator.log" 2>&1 &
    op_pid=$!
}
stop_operator() {
    kill -TERM "$op_pid" && wait "$op_pid" || true
    op_pid=
}
start_operator

scrape() { curl -fsS --noproxy '*' --max-time 5 "$metrics_url"; }
# metric <file> <name> [label filter regex]: the sum of a metric's samples in a scrape.
metric() {
    awk -v name="$2" -v filter="${3:-}" '
        index($0, name) == 1 && (substr($0, length(name) + 1, 1) == "{" || substr($0, length(name) + 1, 1) == " ") && (filter == "" || $0 ~ filter) { s += $NF }
        END { printf "%d\n", s }' "$1"
}
# requests <file>: the requests without the Lease's, the operator's own work.
requests() { awk '/^ciclo_kube_requests_total\{/ && !/resource="leases"/ { s += $NF } END { printf "%d\n", s }' "$1"; }
own_writes() {
    awk '/^ciclo_kube_requests_total\{/ && /verb="(create|update|patch|delete|deletecollection)"/ && !/resource="leases"/ { s += $NF } END { printf "%d\n", s }' "$1"
}
lease_writes() { metric "$1" ciclo_kube_requests_total 'resource="leases".*verb="(create|update|patch)"|verb="(create|update|patch)".*resource="leases"'; }
rss_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$op_pid/status"; }
mib() { calc "$1 / 1024"; }

# wait_quiet <scrape file> [reconciles]: returns once the operator has made no request but the
# Lease's (and with `reconciles`, started no reconcile either) for $quiet seconds, its last
# scrape in the file, and sets $quiet_at to when its last request was seen (to a quarter
# second) and $max_sockets to the most sockets it held meanwhile (connections to the API
# server, and its metrics listener).
wait_quiet() {
    local last=-1 n s t deadline=$((SECONDS + timeout))
    quiet_at=$(now)
    max_sockets=0
    while :; do
        ((SECONDS < deadline)) || die "the operator was still busy after ${timeout}s"
        t=$(now)
        scrape >"$1"
        n=$(requests "$1")
        [[ "${2:-}" == reconciles ]] && n=$((n + $(metric "$1" ciclo_reconcile_runs_total)))
        if ((n != last)); then
            quiet_at=$t
            last=$n
        fi
        # find fails when a descriptor closes while it reads them (pipefail would end the run).
        s=$({ find "/proc/$op_pid/fd" -lname 'socket:*' 2>/dev/null || true; } | wc -l)
        ((s > max_sockets)) && max_sockets=$s
        [[ "$(calc "($t - $quiet_at >= $quiet) ? 1 : 0")" == 1 ]] && return 0
        sleep 0.25
    done
}

# by_verb <from scrape> <to scrape> <n>: the requests between two scrapes (the Lease's left
# out) divided by <n>, by verb: "create 2.00, patch 1.00".
by_verb() {
    awk -v n="$3" '
        FNR == 1 { f++ }
        /^ciclo_kube_requests_total\{/ && !/resource="leases"/ {
            match($0, /verb="[^"]*"/); v = substr($0, RSTART + 6, RLENGTH - 7)
            if (f == 1) a[v] -= $NF; else a[v] += $NF
        }
        END {
            split("get list watch create update patch delete", order, " ")
            for (i = 1; i in order; i++) { v = order[i]; if (v in a && a[v] != 0) { printf "%s%s %.2f", sep, v, a[v] / n; sep = ", " }; delete a[v] }
            for (v in a) if (a[v] != 0) { printf "%s%s %.2f", sep, v, a[v] / n; sep = ", " }
        }' "$1" "$2"
}

# by_resource <from scrape> <to scrape> <n>: the same by verb and resource, without those under
# 0.005 (a watch's renewal): "create events 1.00; patch deployments 1.00".
by_resource() {
    awk -v n="$3" '
        FNR == 1 { f++ }
        /^ciclo_kube_requests_total\{/ && !/resource="leases"/ {
            match($0, /verb="[^"]*"/); v = substr($0, RSTART + 6, RLENGTH - 7)
            match($0, /resource="[^"]*"/); r = substr($0, RSTART + 10, RLENGTH - 11)
            k = v " " r
            if (f == 1) a[k] -= $NF; else a[k] += $NF
        }
        END { for (k in a) if (a[k] / n >= 0.005 || a[k] / n <= -0.005) printf "%s %.2f\n", k, a[k] / n }' "$1" "$2" | sort | paste -sd ';' | sed 's/;/; /g'
}

met() { if [[ "$1" == 1 ]]; then echo met; else echo MISSED; fi; }

# Waits until the operator leads (after a restart, the Lease it released is free at once).
wait_for_leader() {
    local deadline=$((SECONDS + 60))
    until scrape 2>/dev/null | grep -q '^ciclo_leader 1'; do
        kill -0 "$op_pid" 2>/dev/null || die "the operator exited; see its log: $(tail -5 "$work/operator.log")"
        ((SECONDS < deadline)) || die "the operator did not become the leader within 60 s"
        sleep 0.1
    done
}
wait_for_leader

# accept_version <id>: records <id> as the Dataset's latest (and only) accepted version
# through the status subresource, as a finished check would.
accept_version() {
    local version="{\"id\": \"$1\", \"created\": \"2026-01-01T00:00:00Z\", \"rows\": 1000, \"bytes\": 100000, \"files\": 1, \"verdict\": \"Accepted\", \"location\": \"file:///nonexistent/ciclo-bench-artifacts/$1\"}"
    kc -n "$ns" patch dataset bench --subresource=status --type=merge \
        -p "{\"status\": {\"latest\": $version, \"versions\": [$version]}}" >/dev/null
}

# A suspended Dataset (the operator starts no check Job for it) with one accepted version.
kc apply --server-side -f - >/dev/null <<EOF
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: bench, namespace: $ns}
spec:
  source: {uri: "file:///nonexistent/ciclo-bench"}
  suspend: true
EOF
accept_version bench0000000000000000000000000000
# The operator has seen the Dataset (Ready: Suspended) and kept the version.
deadline=$((SECONDS + 60))
until [[ "$(kc -n "$ns" get dataset bench -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}/{.status.latest.id}')" == Suspended/bench0* ]]; do
    ((SECONDS < deadline)) || die "the Dataset was not reconciled as Suspended with its version within 60 s"
    sleep 0.2
done

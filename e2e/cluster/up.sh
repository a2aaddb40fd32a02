#!/usr/bin/env bash
# Starts a real local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler (built by e2e/cluster/build.sh), and one node, of either kind (CLUSTER_NODE):
#
#   kubelet  containerd, the kubelet, kube-proxy and CoreDNS, with the control plane, in a
#            private network and mount namespace (namespaces.sh, kubelet-node.sh); the API
#            server is reached from the host through a forwarder on 127.0.0.1:$APISERVER_PORT
#   process  the ciclo process node (target/debug/ciclo-node), which runs each container's
#            command as a host process; everything listens on the host's 127.0.0.1
#
# Nothing is configured to reach any address outside 127.0.0.0/8 or the private namespace.
# State lives in $REPO/.cluster/ (git-ignored):
#
#   pki/          CA, serving and client certificates, service-account key pair (made once)
#   kubeconfig    admin kubeconfig (certificates embedded, usable from any directory)
#   *.kubeconfig  kubeconfigs of controller-manager, scheduler and node
#   etcd/         etcd data          node/   the node's state dir
#   logs/<name>.log, pids/<name>.pid (+ <name>.exe, the binary the pid must be running)
#
# Ports (environment, defaults): ETCD_CLIENT_PORT=22379 ETCD_PEER_PORT=22380 APISERVER_PORT=6443
# CONTROLLER_MANAGER_PORT=10257 SCHEDULER_PORT=10259 KUBELET_PORT=10250.
# The process node starts only if $CICLO_NODE_BIN (default target/debug/ciclo-node) is
# executable.
#
# If the recorded cluster is already up and healthy, this returns at once. If a start fails
# midway, every process started so far is recorded in .cluster/pids, so e2e/cluster/down.sh (or
# the next up.sh, which runs it first) cleans up.
set -euo pipefail

# Paths, ports and the "is this pid ours and alive" helpers are shared with down.sh.
# shellcheck source=down.sh
. "$(dirname "${BASH_SOURCE[0]}")/down.sh"

started_at=$EPOCHREALTIME
PKI=$CLUSTER/pki
LOGS=$CLUSTER/logs
NODE_NAME=ciclo-node
NODE_BIN=${CICLO_NODE_BIN:-$REPO/target/debug/ciclo-node}

die() {
  log "ERROR: $*"
  if compgen -G "$PIDS/*.pid" >/dev/null; then
    log "processes started so far are recorded in $PIDS; e2e/cluster/down.sh stops them"
  fi
  exit 1
}

node_wanted() { [ "$NODE_KIND" = kubelet ] || [ -x "$NODE_BIN" ]; }
wanted_components() {
  local c
  for c in "${COMPONENTS[@]}"; do
    if [ "$c" != node ] || node_wanted; then echo "$c"; fi
  done
}

# --- probes (each answers in at most ~2 s; --noproxy because a proxy must never see these) ---

# The control plane's own ports are on the loopback of the namespace it runs in.
curl_local() { "${IN_CLUSTER_NET[@]}" curl -fsS --noproxy '*' --max-time 2 "$@" 2>/dev/null; }
etcd_healthy() { curl_local "http://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"'; }
apiserver_ready() {
  [ "$(curl_local --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
         "https://127.0.0.1:$APISERVER_PORT/readyz")" = ok ]
}
# controller-manager and scheduler serve /healthz with a self-signed certificate they make in
# memory and allow it unauthenticated; -k is enough for a liveness probe that sends no secret.
healthz_ok() { [ "$(curl_local -k "https://127.0.0.1:$1/healthz")" = ok ]; }

kc() { "$BIN/kubectl" --kubeconfig "$CLUSTER/kubeconfig" --request-timeout=5s "$@"; }
# The ServiceAccount controller creates `default`; root-ca-cert-publisher creates the CA
# ConfigMap that every pod's projected token volume refers to. Both prove the controller-manager
# works, and pods created before them would be rejected or fail to mount.
default_sa_exists() {
  kc -n default get serviceaccount/default configmap/kube-root-ca.crt -o name >/dev/null 2>&1
}
node_ready() {
  [ "$(kc get node "$NODE_NAME" \
         -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# Runs in a subshell so the recorded ports it loads do not replace the ones asked for now.
cluster_running() (
  local c
  [ -d "$PIDS" ] || exit 1
  recorded_ports
  for c in $(wanted_components); do component_pid "$c" >/dev/null || exit 1; done
  apiserver_ready || exit 1
  log "cluster already running: https://127.0.0.1:$APISERVER_PORT, KUBECONFIG=$CLUSTER/kubeconfig"
)

# wait_for <component> <seconds> <what> <command...>: polls the command; fails early if the
# component died and on timeout, naming the component's log either way.
wait_for() {
  local name=$1 timeout=$2 what=$3 deadline
  shift 3
  deadline=$(( EPOCHSECONDS + timeout ))
  until "$@"; do
    component_pid "$name" >/dev/null || die "$name exited while waiting for $what; see $LOGS/$name.log"
    (( EPOCHSECONDS < deadline )) || die "timed out after ${timeout}s waiting for $what; see $LOGS/$name.log"
    sleep 0.2
  done
}

# start <name> <executable> <args...>: runs the component detached from this shell (setsid: its
# own session, so a Ctrl-C or closed terminal does not reach it; nohup: ignores SIGHUP), in the
# namespaces component_namespaces names, and records its pid before anything else can fail.
# nohup, setsid, nsenter and env exec in place, so $! is the component's own pid. ETCD_CLIENT_PORT/ETCD_PEER_PORT are dropped from the environment
# because etcd reads every ETCD_* variable as configuration and warns about unknown ones.
start() {
  local name=$1 exe=$2 pid
  shift 2
  local ns
  ns=$(component_namespaces "$name")
  # shellcheck disable=SC2086 # the options are words
  nohup setsid ${ns:+nsenter $ns --} env -u ETCD_CLIENT_PORT -u ETCD_PEER_PORT "$exe" "$@" \
    >"$LOGS/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  readlink -f "$exe" >"$PIDS/$name.exe"  # /proc/<pid>/exe shows the resolved path
  log "started $name (pid $pid), log $LOGS/$name.log"
  # Until the exec chain reaches the binary, component_pid would not recognise it yet; wait
  # for that (milliseconds) so wait_for's "did it die?" check cannot misfire.
  for _ in {1..100}; do
    component_pid "$name" >/dev/null && return 0
    alive "$pid" || break
    sleep 0.02
  done
  die "$name did not start; see $LOGS/$name.log"
}

# --- PKI ----------------------------------------------------------------------------------

# Runs an openssl step silently (it chats on stderr even on success), showing its output only
# when it fails.
quiet() {
  local out
  out=$("$@" 2>&1) || { echo "$out" >&2; die "failed: $*"; }
}
new_ec_key() { quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

make_ca() {
  new_ec_key "$PKI/ca.key"
  quiet openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=ciclo-e2e-ca" -days 3650 -out "$PKI/ca.crt" \
    -config <(printf '%s\n' '[req]' 'distinguished_name=dn' 'x509_extensions=ext' '[dn]' '[ext]' \
                'basicConstraints=critical,CA:TRUE' 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature' \
                'subjectKeyIdentifier=hash')
}

# leaf_cert <name> <subject> <serverAuth|clientAuth> [subjectAltName]: <name>.key/.crt signed
# by the CA. Kept if it already exists; the .crt is written last, so it marks a complete pair.
leaf_cert() {
  local name=$1 subj=$2 usage=$3 san=${4:-}
  [ -f "$PKI/$name.crt" ] && return 0
  new_ec_key "$PKI/$name.key"
  quiet openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  quiet openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -out "$PKI/$name.crt.tmp" \
    -extfile <(printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
                 "extendedKeyUsage=$usage" 'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' \
                 ${san:+"subjectAltName=$san"})
  rm -f "$PKI/$name.csr"
  mv "$PKI/$name.crt.tmp" "$PKI/$name.crt"
}

# The SANs a certificate was made with are kept beside it: a changed list (a new node address)
# makes a new certificate.
leaf_cert_sans() {
  local name=$1 san=${4:-}
  if [ "$(cat "$PKI/$name.san" 2>/dev/null)" != "$san" ]; then rm -f "$PKI/$name.crt"; fi
  leaf_cert "$@"
  printf '%s\n' "$san" >"$PKI/$name.san"
}

make_pki() {
  # Certificates signed by a CA that is gone are useless: without a CA, start over.
  if [ ! -f "$PKI/ca.crt" ]; then rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"; make_ca; fi
  leaf_cert_sans apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
  leaf_cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
  leaf_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  leaf_cert scheduler "/CN=system:kube-scheduler" clientAuth
  leaf_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  leaf_cert node "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  leaf_cert kubelet "/CN=$NODE_NAME" serverAuth "IP:127.0.0.1,DNS:$NODE_NAME"
  leaf_cert_sans kubelet-serving "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
  leaf_cert kube-proxy "/CN=system:kube-proxy" clientAuth
  if [ ! -f "$PKI/sa.pub" ]; then
    quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key"
    quiet openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
  fi
}

# write_kubeconfig <file> <cert name> <user>: certificates embedded so the file works anywhere.
# Rewritten on every start because the apiserver port may differ from last time.
write_kubeconfig() {
  local file=$1 cert=$2 user=$3
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ciclo
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: ciclo
  context:
    cluster: ciclo
    user: $user
current-context: ciclo
EOF
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

# --- components ---------------------------------------------------------------------------

start_etcd() {
  local client=http://127.0.0.1:$ETCD_CLIENT_PORT peer=http://127.0.0.1:$ETCD_PEER_PORT
  # Plain HTTP is acceptable because both URLs are loopback-only. The data is disposable test
  # state, so fsync is skipped: with it, etcd on a busy 2-core machine slows every API write.
  start etcd "$BIN/etcd" --name=ciclo --data-dir="$CLUSTER/etcd" \
    --listen-client-urls="$client" --advertise-client-urls="$client" \
    --listen-peer-urls="$peer" --initial-advertise-peer-urls="$peer" \
    --initial-cluster="ciclo=$peer" --unsafe-no-fsync
  wait_for etcd 30 "etcd /health" etcd_healthy
}

start_apiserver() {
  local node_flags
  if [ "$NODE_KIND" = kubelet ]; then
    # In the private namespace: every address there is the cluster's own. Pods reach the API
    # server through the `kubernetes` Service, whose endpoint is the node's address. Pod
    # Security admission enforces `restricted` in every namespace but kube-system, so a pod
    # ciclo (or a test) makes that a real cluster's admission would refuse is refused here.
    write_admission_config
    node_flags=(--bind-address=0.0.0.0 --advertise-address="$NODE_IP"
                --admission-control-config-file="$CLUSTER/admission.yaml")
  else
    # --endpoint-reconciler-type=none: loopback cannot be published as an endpoint of the
    # `kubernetes` Service; the process node gives pods KUBERNETES_SERVICE_HOST=127.0.0.1.
    node_flags=(--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none)
  fi
  # --kubelet-preferred-address-types=InternalIP: logs and exec go to the node's own address.
  start apiserver "$BIN/kube-apiserver" "${node_flags[@]}" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --allow-privileged=true
  wait_for apiserver 120 "kube-apiserver /readyz" apiserver_ready
}

write_admission_config() {
  cat >"$CLUSTER/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: restricted, enforce-version: latest, warn: restricted, warn-version: latest}
    exemptions: {namespaces: [kube-system]}
EOF
}

# The host's way to the API server of a cluster in the private namespace: a listener on the
# host's 127.0.0.1 that joins each connection to the same port on the namespace's loopback, so
# the same kubeconfig works on both sides. socat runs in the host's namespace; each connection's
# second socat is started inside the cluster's.
start_api_forward() {
  start api-forward "$(command -v socat)" \
    "TCP-LISTEN:$APISERVER_PORT,bind=127.0.0.1,reuseaddr,fork" \
    "EXEC:nsenter --net=$NS_NET -- socat STDIO TCP\\:127.0.0.1\\:$APISERVER_PORT"
  wait_for api-forward 10 "the API server through 127.0.0.1:$APISERVER_PORT on the host" \
    apiserver_ready_on_host
}
apiserver_ready_on_host() {
  [ "$(curl -fsS --noproxy '*' --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
         --key "$PKI/admin.key" "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null)" = ok ]
}

# Flags controller-manager and scheduler share: reach the apiserver with their own kubeconfig,
# delegate authn/authz of their own HTTPS endpoint to it, serve on loopback, run alone.
# --authentication-skip-lookup with --client-ca-file: otherwise both read the client and
# requestheader CAs from ConfigMap kube-system/extension-apiserver-authentication, and since this
# cluster has no front proxy (no requestheader CA) they log an error about it every few seconds.
# Usage: control_plane_client_flags <name> <array variable to fill>.
control_plane_client_flags() {
  local kcfg=$CLUSTER/$1.kubeconfig
  local -n into=$2
  into=(--kubeconfig="$kcfg" --authentication-kubeconfig="$kcfg" --authorization-kubeconfig="$kcfg"
        --authentication-skip-lookup=true --client-ca-file="$PKI/ca.crt"
        --bind-address=127.0.0.1 --leader-elect=false)
}

start_controller_manager() {
  # No --cloud-provider and no --allocate-node-cidrs, so no controller needs anything beyond
  # the apiserver on loopback.
  local common
  control_plane_client_flags controller-manager common
  start controller-manager "$BIN/kube-controller-manager" "${common[@]}" \
    --secure-port="$CONTROLLER_MANAGER_PORT" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=true --controllers='*' \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key"
  wait_for controller-manager 60 "kube-controller-manager /healthz" healthz_ok "$CONTROLLER_MANAGER_PORT"
}

start_scheduler() {
  local common
  control_plane_client_flags scheduler common
  start scheduler "$BIN/kube-scheduler" "${common[@]}" \
    --secure-port="$SCHEDULER_PORT"
  wait_for scheduler 60 "kube-scheduler /healthz" healthz_ok "$SCHEDULER_PORT"
}

start_process_node() {
  mkdir -p "$CLUSTER/node"
  start node "$NODE_BIN" \
    --kubeconfig "$CLUSTER/node.kubeconfig" --node-name "$NODE_NAME" --state-dir "$CLUSTER/node" \
    --api-server-host 127.0.0.1 --api-server-port "$APISERVER_PORT" --kubelet-port "$KUBELET_PORT" \
    --tls-cert "$PKI/kubelet.crt" --tls-key "$PKI/kubelet.key" --client-ca "$PKI/ca.crt" \
    --gpus "${CICLO_NODE_GPUS:-2}" --image-entrypoint "ciclo=$REPO/target/debug/ciclo" \
    --image-entrypoint "python=/usr/bin/python3"
}

# The kubelet node: containerd with the node's images, the kubelet, kube-proxy, then CoreDNS.
start_kubelet_node() {
  local built images line
  # The node's own images and the tests' (e2e/cluster/images.sh); ciclo's is loaded by
  # `make deploy`, which builds it.
  built=$("$REPO/e2e/cluster/images.sh") || die "building the node's images failed"
  mapfile -t images <<<"$built"
  for line in "${images[@]}"; do
    case "${line#* }" in
      */pause:*) PAUSE_IMAGE=${line#* } ;;
      */coredns:*) COREDNS_IMAGE=${line#* } ;;
    esac
  done
  start_containerd
  for line in "${images[@]}"; do
    "$REPO/e2e/cluster/load-image.sh" "${line%% *}" >/dev/null || die "could not load ${line%% *}"
  done
  start_kubelet
  start_kube_proxy
  wait_for kubelet 60 "node $NODE_NAME to be Ready" node_ready
  deploy_coredns
  wait_for kubelet 120 "CoreDNS (kube-system/coredns) to be ready" coredns_ready
}

# --- main ---------------------------------------------------------------------------------

up_main() {
  if cluster_running; then exit 0; fi

  # Whatever a previous, unhealthy run left (a dead component, a half-finished start) goes
  # first; down.sh only touches pids that are provably ours. Subshell: it loads recorded ports.
  if compgen -G "$PIDS/*.pid" >/dev/null || [ -d "$NS_DIR" ]; then
    log "a previous cluster is recorded but not healthy; stopping it first"
    ( down_main ) || die "could not stop the previous cluster"
  fi
  choose_node_kind

  BIN=$("$REPO/e2e/cluster/build.sh")
  default_ports
  local busy
  busy=$(listeners_on_ports) || true
  [ -z "$busy" ] || die "cluster ports already in use (another cluster? see below):"$'\n'"$busy"

  mkdir -p "$PIDS" "$LOGS"
  printf '%s\n' "ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT" "ETCD_PEER_PORT=$ETCD_PEER_PORT" \
    "APISERVER_PORT=$APISERVER_PORT" "CONTROLLER_MANAGER_PORT=$CONTROLLER_MANAGER_PORT" \
    "SCHEDULER_PORT=$SCHEDULER_PORT" "KUBELET_PORT=$KUBELET_PORT" "NODE_KIND=$NODE_KIND" >"$PORTS_FILE"

  # The cluster's objects belong to its node: pods of the other kind's node would only fail
  # (a process node cannot run CoreDNS's image). Throwaway state: start it afresh.
  if [ -d "$CLUSTER/etcd" ] && [ "$(cat "$CLUSTER/etcd.node" 2>/dev/null)" != "$NODE_KIND" ]; then
    log "the recorded cluster ran a different node; starting with empty etcd data"
    rm -rf "$CLUSTER/etcd"
  fi
  echo "$NODE_KIND" >"$CLUSTER/etcd.node"

  make_pki
  write_kubeconfig "$CLUSTER/kubeconfig" admin kubernetes-admin
  write_kubeconfig "$CLUSTER/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  write_kubeconfig "$CLUSTER/scheduler.kubeconfig" scheduler system:kube-scheduler
  write_kubeconfig "$CLUSTER/node.kubeconfig" node "system:node:$NODE_NAME"
  write_kubeconfig "$CLUSTER/kube-proxy.kubeconfig" kube-proxy system:kube-proxy

  if [ "$NODE_KIND" = kubelet ]; then
    install_node_packages
    make_namespaces
  fi
  start_etcd
  start_apiserver
  [ "$NODE_KIND" != kubelet ] || start_api_forward
  start_controller_manager
  start_scheduler
  # Pods (CoreDNS's first) are refused or cannot mount their token without these.
  wait_for controller-manager 60 "ServiceAccount default/default and ConfigMap default/kube-root-ca.crt" \
    default_sa_exists
  local node_note="no node ($NODE_BIN not built)"
  if [ "$NODE_KIND" = kubelet ]; then
    start_kubelet_node
    node_note="node $NODE_NAME Ready (kubelet, containerd; pods in $POD_CIDR, Services in $SERVICE_CIDR, DNS $CLUSTER_DNS)"
  elif node_wanted; then
    start_process_node
    node_note="process node $NODE_NAME Ready"
  else
    log "WARNING: $NODE_BIN is missing or not executable; starting the control plane without a node"
  fi

  if [ "$NODE_KIND" = process ] && node_wanted; then wait_for node 60 "node $NODE_NAME to be Ready" node_ready; fi

  log "$(awk -v a="$started_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "cluster up in %.1f s", b - a }'):" \
      "https://127.0.0.1:$APISERVER_PORT, $node_note, KUBECONFIG=$CLUSTER/kubeconfig, kubectl=$BIN/kubectl"
}

up_main "$@"

#!/usr/bin/env bash
# Starts the GitOps side of the local cluster (`make flux-up`, after `make cluster-up`): a git
# server holding the bare repositories under $REPO/.flux/repos (NAME.git, served as
# /NAME.git), Flux's CRDs and namespace, and Flux's source-controller and kustomize-controller
# as processes against the cluster's API server, as the cluster's own components run. All are
# built by e2e/flux/build.sh (cached). A running set is left alone.
#
# gitserver takes only the credentials in $REPO/.flux/git-credentials (`user:password`, made
# here with a random password, mode 0600); the Secret flux-system/git-credentials holds the
# same for GitRepositories (`secretRef: {name: git-credentials}`). $REPO/.flux/env says where
# the server is: GIT_BASE_URL (reachable from pods, the controllers and in-cluster-netns.sh),
# GIT_CREDENTIALS_FILE, GIT_REPOS.
set -euo pipefail

# shellcheck source=down.sh
. "$(dirname "${BASH_SOURCE[0]}")/down.sh"

KUBECONFIG=$CLUSTER/kubeconfig
KUBECTL=${KUBECTL:-$("$REPO/e2e/cluster/build.sh" --dir)/kubectl}
kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }
kubectl get --raw /readyz >/dev/null 2>&1 || { log "ERROR: the local cluster is not up (make cluster-up)"; exit 1; }

bin=$("$REPO/e2e/flux/build.sh")
crds=$(dirname "$bin")/crds
mkdir -p "$STATE/repos" "$STATE/storage" "$STATE/log"
if [ ! -s "$STATE/git-credentials" ]; then
  (umask 077 && printf 'ciclo:%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$STATE/git-credentials")
fi
host=127.0.0.1 bind=127.0.0.1
if [ ${#IN_NET[@]} -gt 0 ]; then host=$NODE_IP bind=0.0.0.0; fi
printf 'GIT_BASE_URL=http://%s:%s\nGIT_CREDENTIALS_FILE=%s\nGIT_REPOS=%s\n' \
  "$host" "$GIT_PORT" "$STATE/git-credentials" "$STATE/repos" >"$STATE/env"

# Flux's kinds, its namespace and the git credentials Secret (from files: a password on a
# command line shows in the process list).
kubectl apply --server-side --force-conflicts -f "$crds" >/dev/null
kubectl wait --for condition=established --timeout 60s -f "$crds" >/dev/null
kubectl create namespace flux-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
cut -d: -f1 "$STATE/git-credentials" | tr -d '\n' >"$tmp/username"
cut -d: -f2- "$STATE/git-credentials" | tr -d '\n' >"$tmp/password"
kubectl -n flux-system create secret generic git-credentials --from-file="$tmp/username" \
  --from-file="$tmp/password" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

running=0
for c in "${COMPONENTS[@]}"; do component_pid "$c" >/dev/null && running=$((running + 1)); done
if [ "$running" -eq "${#COMPONENTS[@]}" ]; then
  log "already running: git at http://$host:$GIT_PORT/, source-controller and kustomize-controller"
  exit 0
fi
down_main

# start NAME ARGS...: NAME from bin/ in the background, outliving this shell (setsid, nohup),
# with its pid and executable recorded for down.sh. nsenter execs in place, so $! is its pid.
start() {
  local name=$1
  shift
  nohup setsid "${IN_NET[@]}" env KUBECONFIG="$KUBECONFIG" RUNTIME_NAMESPACE=flux-system \
    "$bin/$name" "$@" >"$STATE/log/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  readlink -f "$bin/$name" >"$STATE/$name.pid.exe"
}
# wait_for NAME SECONDS URL: until URL answers 2xx from inside the network the component is in.
wait_for() {
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    "${IN_NET[@]}" curl -sf -o /dev/null --noproxy '*' --max-time 2 "$3" && return 0
    component_pid "$1" >/dev/null || { log "ERROR: $1 exited; its log ends with:"; tail -20 "$STATE/log/$1.log" >&2; exit 1; }
    sleep 0.2
  done
  log "ERROR: $1 did not answer $3 within $2 s; see $STATE/log/$1.log"
  exit 1
}

start gitserver -listen "$bind:$GIT_PORT" -root "$STATE/repos" -credentials "$STATE/git-credentials"
# Listening on every address of the cluster's namespace (pods reach it at the node's), or on
# the host's loopback; the health endpoints and the artifact server on loopback only. No
# metrics endpoint (nothing scrapes it), no leader election (one replica), no events sink.
start source-controller --storage-path "$STATE/storage" --storage-addr "127.0.0.1:$STORAGE_PORT" \
  --storage-adv-addr "127.0.0.1:$STORAGE_PORT" --health-addr "127.0.0.1:$SOURCE_HEALTH_PORT" \
  --metrics-addr 0 --log-encoding console --watch-all-namespaces
start kustomize-controller --health-addr "127.0.0.1:$KUSTOMIZE_HEALTH_PORT" --metrics-addr 0 \
  --log-encoding console --watch-all-namespaces
# gitserver answers 401 to a request without its credentials: any answer means it listens.
for ((i = 0; i < 50; i++)); do
  "${IN_NET[@]}" curl -s -o /dev/null --noproxy '*' --max-time 2 "http://127.0.0.1:$GIT_PORT/" && break
  sleep 0.2
done
wait_for source-controller 60 "http://127.0.0.1:$SOURCE_HEALTH_PORT/readyz"
wait_for kustomize-controller 60 "http://127.0.0.1:$KUSTOMIZE_HEALTH_PORT/readyz"
log "git at http://$host:$GIT_PORT/ (repositories in $STATE/repos, credentials in $STATE/git-credentials), source-controller and kustomize-controller up (logs in $STATE/log)"

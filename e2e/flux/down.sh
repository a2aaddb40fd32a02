#!/usr/bin/env bash
# Stops what e2e/flux/up.sh started: gitserver, source-controller and kustomize-controller
# (only the pids it recorded, after checking each still runs the binary it started).
# `--purge` also deletes the repositories and Flux's artifact storage ($REPO/.flux).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=$REPO/.flux
# Ports (environment, defaults): the git server, source-controller's artifact server, and
# each controller's health endpoint (what up.sh waits on).
GIT_PORT=${CICLO_GIT_PORT:-18419}
STORAGE_PORT=${CICLO_FLUX_STORAGE_PORT:-19090}
SOURCE_HEALTH_PORT=${CICLO_FLUX_SOURCE_HEALTH_PORT:-19440}
KUSTOMIZE_HEALTH_PORT=${CICLO_FLUX_KUSTOMIZE_HEALTH_PORT:-19441}
COMPONENTS=(gitserver source-controller kustomize-controller)

log() { echo "flux: $*" >&2; }

# With the kubelet node's cluster up, everything runs inside its private network namespace
# (as the object store does), where pods reach gitserver at the node's address and the tests
# (in-cluster-netns.sh) at 127.0.0.1; otherwise on the host's 127.0.0.1.
CLUSTER=$REPO/.cluster
# shellcheck source=../cluster/namespaces.sh
. "$REPO/e2e/cluster/namespaces.sh"
if ns_exists; then IN_NET=(nsenter "--net=$NS_NET" --); else IN_NET=(); fi

# The recorded pid of a component, if it is alive and still the binary up.sh started.
component_pid() {
  local pid exe
  pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(cat "$STATE/$1.pid.exe" 2>/dev/null)" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

down_main() {
  local c pid
  for c in "${COMPONENTS[@]}"; do
    if pid=$(component_pid "$c"); then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do component_pid "$c" >/dev/null || break; sleep 0.2; done
      if component_pid "$c" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
      log "stopped $c (pid $pid)"
    fi
    rm -f "$STATE/$c.pid" "$STATE/$c.pid.exe"
  done
  if [ "${1:-}" = --purge ]; then rm -rf "$STATE"; fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then down_main "$@"; fi

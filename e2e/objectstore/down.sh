#!/usr/bin/env bash
# Stops the object stores e2e/objectstore/up.sh started (only the pids it recorded, after
# checking each still runs the `weed` it started). `--purge` also deletes their data.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=$REPO/.objectstore
PIDFILE=$STATE/weed.pid
S3_PORT=${CICLO_S3_PORT:-18333}
MASTER_PORT=${CICLO_WEED_MASTER_PORT:-19333}
VOLUME_PORT=${CICLO_WEED_VOLUME_PORT:-18080}
FILER_PORT=${CICLO_WEED_FILER_PORT:-18888}
# The tenants' store (up.sh): a second SeaweedFS that refuses unsigned requests, with its own
# state folder and ports.
TENANT_STATE=$STATE/tenants
TENANT_PIDFILE=$TENANT_STATE/weed.pid
TENANT_S3_PORT=${CICLO_TENANT_S3_PORT:-18334}
TENANT_MASTER_PORT=${CICLO_TENANT_WEED_MASTER_PORT:-19334}
TENANT_VOLUME_PORT=${CICLO_TENANT_WEED_VOLUME_PORT:-18081}
TENANT_FILER_PORT=${CICLO_TENANT_WEED_FILER_PORT:-18889}

log() { echo "objectstore: $*" >&2; }

# With the kubelet node's cluster up, the stores run inside its private network namespace,
# where pods reach them at the node's address and the tests (in-cluster-netns.sh) on 127.0.0.1;
# otherwise on the host's 127.0.0.1.
CLUSTER=$REPO/.cluster
# shellcheck source=../cluster/namespaces.sh
. "$REPO/e2e/cluster/namespaces.sh"
if ns_exists; then IN_NET=(nsenter "--net=$NS_NET" --); else IN_NET=(); fi

# The pid recorded in pidfile $1, if it is alive and still the weed binary up.sh started.
weed_pid() {
  local pidfile=${1:-$PIDFILE} pid exe
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(cat "$pidfile.exe" 2>/dev/null)" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

# Whether an S3 endpoint answers on port $1 (any answer: the tenants' store answers 403).
s3_answers() { "${IN_NET[@]}" curl -s -o /dev/null --noproxy '*' --max-time 2 "http://127.0.0.1:${1:-$S3_PORT}/"; }

# Stops the weed of pidfile $1.
stop_weed() {
  local pidfile=$1 pid
  if pid=$(weed_pid "$pidfile"); then
    kill -TERM "$pid" 2>/dev/null || true
    # weed drains for a while on SIGTERM; the data is disposable, so do not wait long.
    for _ in $(seq 1 50); do weed_pid "$pidfile" >/dev/null || break; sleep 0.2; done
    if weed_pid "$pidfile" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
    log "stopped weed (pid $pid)"
  fi
  rm -f "$pidfile" "$pidfile.exe"
}

down_main() {
  stop_weed "$TENANT_PIDFILE"
  stop_weed "$PIDFILE"
  if [ "${1:-}" = --purge ]; then rm -rf "$STATE"; fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then down_main "$@"; fi

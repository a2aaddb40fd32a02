#!/usr/bin/env bash
# Stops the local cluster started by e2e/cluster/up.sh: the control plane and its node. Of a
# kubelet node, it also kills every pod's processes, removes the pods' cgroups and the private
# namespaces (with every mount made in them), so nothing of the cluster is left.
#
#   e2e/cluster/down.sh           stop everything, keep .cluster/ (PKI, kubeconfigs, etcd data, logs)
#   e2e/cluster/down.sh --purge   stop everything and delete .cluster/ entirely
#
# Only processes recorded in .cluster/pids/ are touched, and only after /proc shows they are
# still the binary up.sh started (a pid may have been reused since). Running it on a stopped
# cluster is a no-op. up.sh sources this file for the shared paths, ports and process helpers,
# so the logic that decides "is this ours and alive" exists once.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=$REPO/.cluster
PIDS=$CLUSTER/pids
PGIDS=$CLUSTER/node/pgids
PORTS_FILE=$CLUSTER/ports.env

log() { echo "${0##*/}: $*" >&2; }

# shellcheck source=namespaces.sh
. "$REPO/e2e/cluster/namespaces.sh"
# shellcheck source=kubelet-node.sh
. "$REPO/e2e/cluster/kubelet-node.sh"

# The node's kind: CLUSTER_NODE for a new cluster, what was recorded for a running one.
choose_node_kind() {
  NODE_KIND=${NODE_KIND:-${CLUSTER_NODE:-kubelet}}
  case "$NODE_KIND" in
    kubelet)
      # Start order; down.sh stops in the reverse order so nothing loses its backend while
      # running.
      COMPONENTS=(etcd apiserver api-forward controller-manager scheduler containerd kubelet kube-proxy)
      IN_CLUSTER_NET=(nsenter "--net=$NS_NET" --) ;;
    process)
      COMPONENTS=(etcd apiserver controller-manager scheduler node)
      IN_CLUSTER_NET=() ;;
    *) log "CLUSTER_NODE must be kubelet or process, not '$NODE_KIND'"; exit 2 ;;
  esac
}

# The namespaces a component runs in (nsenter's options; none: the host's).
component_namespaces() {
  [ "$NODE_KIND" = kubelet ] || return 0
  case "$1" in
    etcd | apiserver | controller-manager | scheduler) echo "--net=$NS_NET" ;;
    containerd | kubelet | kube-proxy) echo "--net=$NS_NET --mount=$NS_MNT" ;;
  esac
}

# Ports come from the environment (defaults avoid the well-known etcd ports so a developer's own
# etcd does not clash). Once a cluster has been started, the ports it used are recorded and win,
# so down.sh and the "already up" check always look at what is actually running.
default_ports() {
  ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-22379}
  ETCD_PEER_PORT=${ETCD_PEER_PORT:-22380}
  APISERVER_PORT=${APISERVER_PORT:-6443}
  CONTROLLER_MANAGER_PORT=${CONTROLLER_MANAGER_PORT:-10257}
  SCHEDULER_PORT=${SCHEDULER_PORT:-10259}
  KUBELET_PORT=${KUBELET_PORT:-10250}
}
recorded_ports() {
  default_ports
  # shellcheck source=/dev/null
  if [ -f "$PORTS_FILE" ]; then . "$PORTS_FILE"; fi
  choose_node_kind
}
# The ports the cluster binds on the host: all of them for the process node; with the kubelet
# node only the API server's forwarder (the rest are in the private namespace).
all_ports() {
  if [ "$NODE_KIND" = kubelet ]; then echo "$APISERVER_PORT"; return; fi
  echo "$ETCD_CLIENT_PORT $ETCD_PEER_PORT $APISERVER_PORT $CONTROLLER_MANAGER_PORT $SCHEDULER_PORT $KUBELET_PORT"
}

# A pid counts as alive unless it is gone or a zombie: pid 1 in these sandboxes may not reap
# orphans, and a zombie holds no port and does no work.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Prints the pid of component $1 if its pid file names a live process that is still running the
# executable recorded next to it (<name>.exe), and whose command line mentions this cluster's
# state directory; fails otherwise. A binary rebuilt since it started shows up as
# "<path> (deleted)" in /proc and still counts.
component_pid() {
  local pid exe want cmd
  pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
  want=$(cat "$PIDS/$1.exe" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  # The binary itself, or an interpreter running it as a script (a stand-in node in a test).
  [ "${exe% (deleted)}" = "$want" ] || [[ " $cmd" == *" $want "* ]] || return 1
  [[ $cmd == *"$CLUSTER/"* ]] || return 1
  echo "$pid"
}

# True while some process of group $1 is alive (zombies do not count, as above).
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'; }

# poll_while <seconds> <command...>: waits, in 0.1 s steps, until the command fails; fails
# itself if the command still succeeds after that many seconds.
poll_while() {
  local steps=$(( $1 * 10 ))
  shift
  while "$@"; do
    (( steps-- > 0 )) || return 1
    sleep 0.1
  done
}

stop_component() {
  local name=$1 pid
  if pid=$(component_pid "$name"); then
    log "stopping $name (pid $pid)"
    STOPPED=$(( ${STOPPED:-0} + 1 ))
    kill -TERM "$pid" 2>/dev/null || true
    if ! poll_while 15 alive "$pid"; then
      log "$name (pid $pid) ignored SIGTERM for 15 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      poll_while 5 alive "$pid" || log "WARNING: $name (pid $pid) still present after SIGKILL"
    fi
  elif [ -f "$PIDS/$name.pid" ]; then
    log "$name: recorded pid $(cat "$PIDS/$name.pid") is not running (or no longer ours); forgetting it"
  fi
  rm -f "$PIDS/$name.pid" "$PIDS/$name.exe"
}

# The node runs each pod's processes in their own process group and records the group ids. If
# the node died or left pods behind, nothing else would ever stop them, so kill the groups here.
kill_pod_groups() {
  local f pgid own
  [ -d "$PGIDS" ] || return 0
  own=$(ps -o pgid= $$ | tr -d ' ')
  for f in "$PGIDS"/*; do
    [ -e "$f" ] || continue
    pgid=${f##*/}
    # Never signal a malformed id, init's group, or our own.
    if [[ $pgid =~ ^[0-9]+$ ]] && (( pgid > 1 )) && [ "$pgid" != "$own" ] && group_alive "$pgid"; then
      log "killing leftover pod process group $pgid"
      kill -KILL -- "-$pgid" 2>/dev/null || true
      # Gone within milliseconds; wait so the port check below does not race them.
      poll_while 5 group_alive "$pgid" || log "WARNING: process group $pgid survived SIGKILL"
    fi
    rm -f "$f"
  done
}

# Prints what a stopped cluster must not leave: a pod cgroup, a mount under the state
# directory (namespaces, volumes, root filesystems), a process running one of the cluster's
# binaries or started with its state directory. Nothing: nothing is left.
cluster_leftovers() {
  local p exe cmd
  find /sys/fs/cgroup/*/"$CGROUP_ROOT" -maxdepth 0 -type d 2>/dev/null | sed 's/^/cgroup: /'
  awk -v d="$CLUSTER/" 'index($5, d) == 1 {print "mount: " $5}' /proc/self/mountinfo
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != $$ ] || continue
    alive "${p#/proc/}" || continue
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    exe=$(readlink "$p/exe" 2>/dev/null) || exe=
    if [[ $cmd == *"$CLUSTER/"* ]] || [[ $exe == */control-plane/*/bin/* ]] || [[ $cmd == containerd-shim* && $cmd == *"$CLUSTER"* ]]; then
      echo "process: ${p#/proc/} $cmd"
    fi
  done
}

# Prints `ss` lines of any TCP listener on the cluster's ports, whoever owns it.
listeners_on_ports() {
  local filter='' p
  for p in $(all_ports); do filter+="${filter:+ or }sport = :$p"; done
  ss -Hltnp "( $filter )"
}

down_main() {
  local purge=false
  case "${1:-}" in
    --purge) purge=true ;;
    "") ;;
    *) echo "usage: ${0##*/} [--purge]" >&2; return 2 ;;
  esac
  recorded_ports

  local i
  for (( i = ${#COMPONENTS[@]} - 1; i >= 0; i-- )); do
    stop_component "${COMPONENTS[i]}"
    if [ "${COMPONENTS[i]}" = node ]; then kill_pod_groups; fi
  done
  # Of a kubelet node: the pods' processes (in cgroups of their own), then the shims and
  # anything else in the namespaces, and the namespaces with their mounts.
  remove_pod_cgroups
  remove_namespaces
  # Nothing of the cluster may be left: no process, mount or cgroup, no listener on its ports.
  local left
  left=$(cluster_leftovers; listeners_on_ports | sed 's/^/listener: /')
  if [ -n "$left" ]; then
    log "ERROR: the cluster left these behind (ports: $(all_ports)):"
    echo "$left" >&2
    return 1
  fi

  local what="stopped ${STOPPED:-0} process(es)"
  if [ "${STOPPED:-0}" = 0 ]; then what="nothing was running"; fi
  if $purge; then
    rm -rf "$CLUSTER"
    log "$what; removed $CLUSTER"
  else
    log "$what; state kept in $CLUSTER (--purge removes it)"
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then down_main "$@"; fi

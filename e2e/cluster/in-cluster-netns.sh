#!/usr/bin/env bash
# Runs a command inside the kubelet node's private network namespace (see namespaces.sh), where
# pod addresses, Service ClusterIPs and the cluster's DNS names are reachable, as they are from a
# node of any cluster. The command's resolver is the cluster's DNS (a private mount namespace
# of its own shows it a resolv.conf naming it), so `http://wdbc.ml-team.svc:8080` works, and
# CICLO_NODE_ADDRESS names the node's own address.
# Nothing it sends can leave the namespace. On a cluster with the process node, or none, the
# command runs as it is.
#
#   e2e/cluster/in-cluster-netns.sh CMD [ARGS...]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=$REPO/.cluster
log() { echo "${0##*/}: $*" >&2; }
# shellcheck source=namespaces.sh
. "$REPO/e2e/cluster/namespaces.sh"

[ $# -gt 0 ] || { echo "usage: ${0##*/} CMD [ARGS...]" >&2; exit 2; }
if ! ns_exists; then exec "$@"; fi

# As the kubelet writes a pod's: the cluster's DNS, its search path, ndots 5 (so a short
# Service name is tried inside the cluster first).
resolv=$CLUSTER/node/in-cluster-resolv.conf
printf '%s\n' "nameserver $CLUSTER_DNS" \
  'search default.svc.cluster.local svc.cluster.local cluster.local' 'options ndots:5' >"$resolv"
# Where servers on the node itself (the S3 store) listen, for tests that hand it to pods.
export CICLO_NODE_ADDRESS=$NODE_IP
# The caller's process, still in the host's namespaces: a test that must run a host-side
# script (loading an image into the node, `make deploy`'s install.sh) enters them through it.
export CICLO_HOST_PID=${CICLO_HOST_PID:-$PPID}
exec nsenter --net="$NS_NET" -- unshare --mount --propagation private \
  sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$resolv" "$@"

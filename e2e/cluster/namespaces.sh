# shellcheck shell=bash
# The private namespaces the kubelet node's cluster lives in (sourced by up.sh, down.sh and
# in-cluster-netns.sh; needs $CLUSTER and log()).
#
# One network namespace holds the whole cluster: etcd, the control plane, containerd, the
# kubelet, kube-proxy and every pod address. Its only links are a veth pair whose both ends
# are inside it, and the pods' bridge: no route, NAT or bridge leads out of it, so no packet
# to a pod or Service address can reach the machine's own network. The API server is reached
# from the host through one forwarder on the host's 127.0.0.1 (up.sh).
#
# One mount namespace, inside it, holds what containerd and the kubelet mount (container root
# filesystems, pod volumes, pod network namespaces), a private /run and /var/log, and the three
# kernel settings the kubelet insists on (vm.overcommit_memory, kernel.panic,
# kernel.panic_on_oops), which are machine-wide and must not change on the host: there, they
# are files holding the values the kubelet wants, mounted over /proc/sys.
#
# Both are kept alive by bind mounts on files in $CLUSTER/ns, which is itself a private mount,
# so that nothing the namespaces hold propagates back to the host.

NS_DIR=$CLUSTER/ns
NS_NET=$NS_DIR/net
NS_MNT=$NS_DIR/mnt
# The node's own address (the kubelet's InternalIP, the API server's advertised address), the
# pods' range (one bridge, host-local addresses) and the Services' range.
NODE_IP=10.200.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
CLUSTER_DNS=10.96.0.10

ns_exists() { mountpoint -q "$NS_NET" 2>/dev/null && mountpoint -q "$NS_MNT" 2>/dev/null; }

# in_net <command...>: the command in the cluster's network namespace.
in_net() { nsenter --net="$NS_NET" -- "$@"; }
# in_node <command...>: the command in the cluster's network and mount namespaces.
in_node() { nsenter --net="$NS_NET" --mount="$NS_MNT" -- "$@"; }

make_namespaces() {
  ns_exists && return 0
  mkdir -p "$NS_DIR" "$CLUSTER/node/sysctl" "$CLUSTER/node/var-log"
  mountpoint -q "$NS_DIR" || mount --bind "$NS_DIR" "$NS_DIR"
  mount --make-private "$NS_DIR"
  touch "$NS_NET" "$NS_MNT"
  unshare --net="$NS_NET" true

  # The node's interface: one end of a veth pair (the kernel has no dummy interfaces here)
  # whose other end stays in the namespace too. The Services' range is routed to it, so that a
  # connection to a ClusterIP from the node itself finds a route before kube-proxy's rules
  # rewrite its destination; nothing else is routed anywhere.
  in_net ip link set lo up
  in_net ip link add node0 type veth peer name node0-peer
  in_net ip addr add "$NODE_IP/24" dev node0
  in_net ip link set node0 up
  in_net ip link set node0-peer up
  in_net ip route add "$SERVICE_CIDR" dev node0
  # Per-namespace settings (the host's stay as they are): pods' packets are forwarded between
  # the bridge and the node, and pass through kube-proxy's rules even between two pods on
  # the same bridge.
  in_net sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

  printf '1\n' >"$CLUSTER/node/sysctl/overcommit_memory"
  printf '10\n' >"$CLUSTER/node/sysctl/panic"
  printf '1\n' >"$CLUSTER/node/sysctl/panic_on_oops"
  unshare --mount="$NS_MNT" --propagation private sh -euc '
    mount -t tmpfs -o mode=0755 ciclo-run /run
    mkdir -p /run/netns /run/containerd /run/lock
    mount --bind "$1/sysctl/overcommit_memory" /proc/sys/vm/overcommit_memory
    mount --bind "$1/sysctl/panic" /proc/sys/kernel/panic
    mount --bind "$1/sysctl/panic_on_oops" /proc/sys/kernel/panic_on_oops
    mount --bind "$1/var-log" /var/log
  ' sh "$CLUSTER/node"
  log "private network and mount namespaces in $NS_DIR (node address $NODE_IP)"
}

# pids_in_netns: every process whose network namespace is the cluster's.
pids_in_netns() {
  local want p
  want=$(stat -L -c %i "$NS_NET" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [ "$(stat -L -c %i "$p/ns/net" 2>/dev/null)" = "$want" ] && echo "${p#/proc/}"
  done
  return 0
}

netns_busy() { [ -n "$(pids_in_netns)" ]; }

# remove_namespaces: kills whatever still runs in them, then unmounts the files that keep them.
remove_namespaces() {
  local pids
  pids=$(pids_in_netns)
  if [ -n "$pids" ]; then
    log "killing $(wc -w <<<"$pids") process(es) left in the cluster's network namespace"
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $pids 2>/dev/null || true
    poll_while 5 netns_busy || log "WARNING: processes survived SIGKILL: $(pids_in_netns)"
  fi
  local f
  for f in "$NS_MNT" "$NS_NET" "$NS_DIR"; do
    if mountpoint -q "$f" 2>/dev/null; then umount "$f" || umount -l "$f"; fi
  done
  rm -rf "$NS_DIR"
}

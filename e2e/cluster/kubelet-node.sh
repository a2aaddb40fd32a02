# shellcheck shell=bash
# The kubelet node (sourced by up.sh and down.sh): containerd and runc from Debian, the CNI
# bridge plugin, the kubelet and kube-proxy built from the pinned Kubernetes module, and CoreDNS
# as a Deployment behind the kube-dns Service, all inside the private namespaces of
# namespaces.sh. Images come from OCI archives imported into containerd; nothing is pulled.

NODE_DIR=$CLUSTER/node
CONTAINERD_DIR=$NODE_DIR/containerd
CONTAINERD_SOCK=$CONTAINERD_DIR/containerd.sock
# Every pod's cgroup lives under this one, in each cgroup v1 hierarchy, so cluster-down can
# find (and remove) all of them — and only this cluster's: another clone's has another name.
CGROUP_ROOT=ciclo-$(printf '%s' "$CLUSTER" | sha256sum | cut -c1-8)

# The Debian packages the node needs; installed once, as the image build installs buildah.
install_node_packages() {
  local missing=() c
  for c in containerd:containerd runc:runc socat:socat conntrack:conntrack nft:nftables; do
    command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ ${#missing[@]} = 0 ] && return 0
  log "installing ${missing[*]} (Debian packages)"
  apt-get update -qq >&2
  # --no-install-recommends: the packages' own service units are never started here.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

write_containerd_config() {
  mkdir -p "$CONTAINERD_DIR" "$NODE_DIR/cni"
  cat >"$CONTAINERD_DIR/config.toml" <<EOF
# Written by e2e/cluster/up.sh. Every path is under $NODE_DIR; what containerd would keep in
# /run (shim sockets) is on the node's private /run.
version = 2
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"
# Storage drivers this kernel lacks, and tracing nobody collects: not loaded, not logged.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CONTAINERD_DIR/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without CAP_SYS_RESOURCE (none here) a container may not lower its OOM score below the
  # runtime's own; containerd then keeps it at that.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 without systemd as init: the kubelet uses the cgroupfs driver too.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
EOF
  # One bridge for every pod on the node, its gateway address the node's side of it. No IP
  # masquerade: nothing behind the node is ever reached. Hairpin, so a pod reaches itself
  # through its own Service.
  cat >"$NODE_DIR/cni/10-ciclo.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ciclo",
  "plugins": [{
    "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$NODE_DIR/cni-ipam",
      "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
EOF
}

ctr_node() { in_node ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

containerd_ready() { ctr_node version >/dev/null 2>&1; }

start_containerd() {
  write_containerd_config
  start containerd "$(command -v containerd)" --config "$CONTAINERD_DIR/config.toml"
  wait_for containerd 30 "containerd's socket" containerd_ready
}

write_kubelet_config() {
  mkdir -p "$NODE_DIR/kubelet"
  # The resolver configuration pods with dnsPolicy Default get, and whose search path
  # ClusterFirst pods inherit: nothing outside the cluster.
  printf '%s\n' '# no name server outside the cluster' >"$NODE_DIR/resolv.conf"
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine's kernel mounts cgroup v1 (hybrid); 1.36 refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS]
resolvConf: $NODE_DIR/resolv.conf
failSwapOn: false
# The machine's disk is shared and often three quarters full: evict only when it is really
# short, and never collect the images, which no registry could give back.
evictionHard: {memory.available: 100Mi, nodefs.available: 1Gi, imagefs.available: 1Gi, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# A crashed container is restarted within 2 s, not after a back-off growing to 5 minutes: the
# tests crash ciclo's replicas on purpose (SIGKILL), many times in one run, and wait for them.
crashLoopBackOff: {maxContainerRestartPeriod: 2s}
EOF
}

kubelet_healthy() { [ "$(in_net curl -fsS --max-time 2 http://127.0.0.1:10248/healthz 2>/dev/null)" = ok ]; }

# The kubelet refuses a cgroup root that does not exist. cpuset needs its CPUs and memory
# nodes set before a task can join (cgroup v1 leaves a new cgroup's empty).
make_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ "$h" != /sys/fs/cgroup/unified/ ] || continue
    mkdir -p "$h$CGROUP_ROOT"
  done
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus
  cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems
}

start_kubelet() {
  write_kubelet_config
  make_cgroup_root
  start kubelet "$BIN/kubelet" --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$CLUSTER/node.kubeconfig" --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" --root-dir="$NODE_DIR/kubelet" --cert-dir="$NODE_DIR/kubelet/pki"
  wait_for kubelet 60 "the kubelet's /healthz" kubelet_healthy
}

start_kube_proxy() {
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CLUSTER/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: nftables
clusterCIDR: $POD_CIDR
# nf_conntrack_max is machine-wide: leave it (and the timeouts) as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  start kube-proxy "$BIN/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml"
}

# CoreDNS as clusters run it: a Deployment behind the kube-dns Service at $CLUSTER_DNS, reading
# Services and EndpointSlices with its own ServiceAccount. It listens on 1053 (no privileged
# port, so no capability) under the restricted Pod Security profile.
deploy_coredns() {
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
# The kubernetes plugin answers from Services, EndpointSlices and namespaces it watches.
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
        loadbalance
    }
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $CLUSTER_DNS
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: IfNotPresent
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
EOF
}

coredns_ready() {
  [ "$(kc -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = 1 ]
}

# --- stopping -----------------------------------------------------------------------------

# The pods' processes live in cgroups under /$CGROUP_ROOT (not in the cluster's network
# namespace: each pod has its own). Kill them, then remove the cgroups, deepest first.
remove_pod_cgroups() {
  local dirs d killed=0
  dirs=$(find /sys/fs/cgroup/*/"$CGROUP_ROOT" -depth -type d 2>/dev/null) || true
  [ -n "$dirs" ] || return 0
  local pids
  for d in $dirs; do
    # (cgroupfs files have no size: read them to know)
    pids=$(cat "$d/cgroup.procs" 2>/dev/null) || continue
    [ -n "$pids" ] || continue
    # shellcheck disable=SC2086 # one pid per line
    kill -KILL $pids 2>/dev/null || true
    killed=1
  done
  [ "$killed" = 0 ] || sleep 0.5
  for d in $dirs; do rmdir "$d" 2>/dev/null || true; done
  dirs=$(find /sys/fs/cgroup/*/"$CGROUP_ROOT" -depth -type d 2>/dev/null) || true
  [ -z "$dirs" ] || log "WARNING: cgroups left behind: $dirs"
}

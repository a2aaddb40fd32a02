#!/usr/bin/env bash
# `make demo`: build everything, start the local cluster (unless KUBECONFIG names another
# cluster), the S3 store and ciclo from its chart, then run the narrated cycle. On the local
# kubelet node it runs inside the cluster's network namespace (e2e/cluster/in-cluster-netns.sh),
# where it sends its requests to the ModelDeployment's Service by name, as a client in the
# cluster would.
set -euo pipefail
cd "$(dirname "$0")/../.."
local_kubeconfig="$PWD/.cluster/kubeconfig"
start=$SECONDS
say() { printf '\n== %s (%d s)\n' "$1" $((SECONDS - start)); }

say "building ciclo, the control plane and the tools (cached after the first run)"
make --no-print-directory build control-plane tools >/dev/null
if [ "${KUBECONFIG:-$local_kubeconfig}" = "$local_kubeconfig" ]; then
  say "starting the local cluster (etcd, kube-apiserver, controller-manager, scheduler; a ${CLUSTER_NODE:-kubelet} node)"
  make --no-print-directory cluster-up >/dev/null
  export KUBECONFIG=$local_kubeconfig
else
  kubectl=$(e2e/cluster/build.sh --dir)/kubectl
  say "using the cluster of KUBECONFIG=$KUBECONFIG (context $("$kubectl" config current-context))"
  echo "Its pods must reach the S3 store at ${CICLO_S3_ENDPOINT:-http://127.0.0.1:18333} and run the image ghcr.io/ciclo-dev/ciclo:dev."
fi
say "starting the S3-compatible store (SeaweedFS)"
make --no-print-directory objectstore-up >/dev/null
say "installing ciclo from charts/ciclo (helm upgrade --install)"
make --no-print-directory deploy 2>&1 | grep -vE '^level=INFO|Waiting for deployment' | tail -3
if [ -n "${GITOPS:-}" ] && [ "${GITOPS}" != 0 ]; then
  [ "${KUBECONFIG}" = "$local_kubeconfig" ] || { echo "GITOPS=1 runs Flux and the git server beside the local cluster only" >&2; exit 1; }
  say "starting the git server and Flux (source-controller, kustomize-controller; built once)"
  make --no-print-directory flux-up >/dev/null
  export GITOPS
fi
say "running the cycle"
exec e2e/cluster/in-cluster-netns.sh target/debug/ciclo-demo

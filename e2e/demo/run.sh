#!/usr/bin/env bash
# `make demo`: build everything, start the local control plane (unless KUBECONFIG names
# another cluster), the S3 store and ciclo from its chart, then run the narrated cycle.
set -euo pipefail
cd "$(dirname "$0")/../.."
local_kubeconfig="$PWD/.cluster/kubeconfig"
start=$SECONDS
say() { printf '\n== %s (%d s)\n' "$1" $((SECONDS - start)); }

say "building ciclo, the control plane and the tools (cached after the first run)"
make --no-print-directory build control-plane tools >/dev/null
if [ "${KUBECONFIG:-$local_kubeconfig}" = "$local_kubeconfig" ]; then
  say "starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, process node)"
  make --no-print-directory cluster-up >/dev/null
  export KUBECONFIG=$local_kubeconfig
else
  kubectl=$(e2e/cluster/build.sh --dir)/kubectl
  say "using the cluster of KUBECONFIG=$KUBECONFIG (context $("$kubectl" config current-context))"
  echo "Its pods must reach the S3 store at ${CICLO_S3_ENDPOINT:-http://127.0.0.1:18333} and run the image ghcr.io/ciclo-dev/ciclo:dev."
fi
say "starting the S3-compatible store (SeaweedFS) on 127.0.0.1"
make --no-print-directory objectstore-up >/dev/null
say "installing ciclo from charts/ciclo (helm upgrade --install)"
make --no-print-directory deploy 2>&1 | grep -vE '^level=INFO|Waiting for deployment' | tail -3
say "running the cycle"
exec target/debug/ciclo-demo

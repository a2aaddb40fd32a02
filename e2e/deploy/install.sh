#!/usr/bin/env bash
# `make deploy`: installs (or upgrades) ciclo into the local cluster from charts/ciclo, as the
# end-to-end tests and the demo run it (e2e/deploy/values.yaml), and waits for it to roll out.
#
# On the kubelet node, the image is ciclo's real one: built by e2e/image/build.sh (with the
# unoptimised `dev` profile unless CICLO_IMAGE_PROFILE says otherwise), loaded into the node's
# containerd, and pinned by digest, so a new build rolls out and an unchanged one does not
# restart. On the process node, the image's name maps to the freshly built binary, unchanged in
# the pod spec: the Deployment is restarted to run it.
#
# Needs KUBECTL and HELM (the Makefile passes them).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${KUBECTL:?}" "${HELM:?}"

$KUBECTL apply --server-side --force-conflicts -f "$(e2e/cluster/gateway-api.sh)"
$KUBECTL apply --server-side -f e2e/deploy/namespace.yaml

node_kind=$(sed -n 's/^NODE_KIND=//p' .cluster/ports.env 2>/dev/null || true)
extra=()
if [ "$node_kind" = kubelet ]; then
  export CICLO_IMAGE_PROFILE=${CICLO_IMAGE_PROFILE:-dev}
  e2e/image/build.sh >&2
  # Also as the tag values.yaml names, for the tests that install a second ciclo from it.
  tag=$(sed -n 's/^  tag: *//p' e2e/deploy/values.yaml)
  read -r _ ref < <(e2e/cluster/load-image.sh "$(e2e/image/build.sh --archive)" "$tag")
  extra=(-f e2e/deploy/values-kubelet.yaml --set "image.digest=${ref#*@}")
fi
# --force-conflicts: the CRDs may have been applied by kubectl since (the benchmarks' harness
# does), and the chart's version of them is the one to run.
$HELM upgrade --install ciclo charts/ciclo --namespace ciclo-system -f e2e/deploy/values.yaml \
  "${extra[@]}" --force-conflicts
if [ "$node_kind" != kubelet ]; then
  $KUBECTL -n ciclo-system rollout restart deployment/ciclo-operator
fi
$KUBECTL -n ciclo-system rollout status deployment/ciclo-operator --timeout=120s

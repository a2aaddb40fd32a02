#!/usr/bin/env bash
# Prints the path of the Gateway API's HTTPRoute CRD (standard channel), taken from the
# sigs.k8s.io/gateway-api Go module through the module proxy (cached in the Go module cache),
# so the tests can install the CRD a ModelDeployment's `trafficRouting` needs. No Gateway
# implementation comes with it: the tests check the weights ciclo writes, not routed traffic.
set -euo pipefail
VERSION=v1.6.3
dir=$(go env GOMODCACHE)/sigs.k8s.io/gateway-api@$VERSION
if [ ! -d "$dir" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && go mod init gateway-api-crds >/dev/null 2>&1 &&
     GOFLAGS=-mod=mod go mod download sigs.k8s.io/gateway-api@$VERSION)
fi
echo "$dir/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"

#!/usr/bin/env bash
# Runs ciclo's Argo CD health checks (manifests/argocd/health/ciclo.dev/<Kind>/health.lua)
# on every sample their health_test.yaml names, in gopher-lua (the interpreter Argo CD
# embeds) with Argo CD's sandbox, and checks that manifests/argocd/argocd-cm-patch.yaml
# carries the same Lua. Go's build and module caches keep a second run at about a second;
# the modules come from the Go proxy once.
#
#   e2e/health/test.sh            run the checks
#   e2e/health/test.sh -update    rewrite argocd-cm-patch.yaml from the health.lua files first
set -euo pipefail
cd "$(dirname "$0")"
# Use this machine's Go, and never rewrite go.mod/go.sum from a clean clone.
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
go vet ./...
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || { echo "test.sh: not gofmt-formatted: $unformatted" >&2; exit 1; }
go test -count=1 ./... "$@"

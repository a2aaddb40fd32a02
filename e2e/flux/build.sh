#!/usr/bin/env bash
# Builds the GitOps side of the local cluster: Flux's source-controller and
# kustomize-controller from the Go modules pinned in e2e/flux/{source,kustomize}-controller
# (go.mod, go.sum), their CustomResourceDefinitions from the same modules, and gitserver
# (e2e/flux/gitserver: Git's own http-backend behind a small HTTP server), into a cache folder
# outside the repository keyed by everything that decides the output; a matching cache is
# reused as is.
#
#   e2e/flux/build.sh          build if needed, print the bin directory
#   e2e/flux/build.sh --dir    print the bin directory only (may not exist yet)
#
# Beside bin/ is crds/: every CRD the two controllers watch (source-controller starts a
# controller per source kind; kustomize-controller watches GitRepository, OCIRepository,
# Bucket and ExternalArtifact besides its Kustomization).
#
# Versions: v1.9.6 of both, the newest the machine's Go (1.26) builds from the module proxy
# (v1.10 needs Go 1.27 and fluxcd/pkg modules the proxy does not serve). source-controller's
# go.mod asks for github.com/fluxcd/pkg/artifact v0.18.3, which the proxy refuses (403);
# its go.mod here replaces it with v0.18.0, the nearest release it serves.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
controllers=(source-controller kustomize-controller)

key=$(cat "$here/build.sh" "$here"/{source-controller,kustomize-controller}/{go.mod,go.sum,tools.go} \
        "$here"/gitserver/{go.mod,main.go} <(go version) \
      | sha256sum | cut -c1-16)
out="$cache_root/flux/$key"

if [ "${1:-}" = "--dir" ]; then echo "$out/bin"; exit 0; fi
if [ -f "$out/complete" ]; then echo "$out/bin"; exit 0; fi

# The go command must not rewrite go.mod/go.sum in a clean clone, and must use this
# machine's Go (a toolchain line in a dependency must not trigger a download).
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0

start=$(date +%s)
echo "build.sh: building Flux's ${controllers[*]} and gitserver into $out (first time only; ~10 minutes of CPU each controller)" >&2
rm -rf "$out" && mkdir -p "$out/bin" "$out/crds"
pids=()
for m in "${controllers[@]}"; do
  # Both at once: each is mostly one long compile and link.
  (cd "$here/$m" && go build -trimpath -ldflags "-s -w" -o "$out/bin/$m" "github.com/fluxcd/$m") &
  pids+=($!)
done
(cd "$here/gitserver" && go build -trimpath -ldflags "-s -w" -o "$out/bin/gitserver" .)
for pid in "${pids[@]}"; do wait "$pid"; done

for m in "${controllers[@]}"; do
  dir=$(cd "$here/$m" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$m")
  cp "$dir"/config/crd/bases/*.yaml "$out/crds/"
done
chmod -R u+w "$out/crds"
echo "build.sh: $(ls "$out/bin" | tr '\n' ' ')and $(ls "$out/crds" | wc -l) CRDs, done in $(( $(date +%s) - start )) s" >&2
touch "$out/complete"
echo "$out/bin"

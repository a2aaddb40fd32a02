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
# The controllers (minutes) and gitserver (seconds) are cached apart, each keyed by its own
# inputs, so a change to gitserver does not rebuild Flux; bin/ links to both.
#
# Versions: v1.9.6 of both, the newest the machine's Go (1.26) builds from the module proxy
# (v1.10 needs Go 1.27 and fluxcd/pkg modules the proxy does not serve). source-controller's
# go.mod asks for github.com/fluxcd/pkg/artifact v0.18.3, which the proxy refuses (403);
# its go.mod here replaces it with v0.18.0, the nearest release it serves.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
controllers=(source-controller kustomize-controller)
# How the controllers are built; change it when the go build line below changes.
recipe="go build -trimpath -ldflags '-s -w', CGO_ENABLED=0, -mod=readonly"

key_of() { sha256sum | cut -c1-16; }
ckey=$(cat "$here"/{source-controller,kustomize-controller}/{go.mod,go.sum,tools.go} \
        <(echo "$recipe") <(go version) | key_of)
gkey=$(cat "$here"/gitserver/{go.mod,main.go} <(go version) | key_of)
controllers_dir="$cache_root/flux/controllers-$ckey"
gitserver_dir="$cache_root/flux/gitserver-$gkey"
out="$cache_root/flux/$ckey-$gkey"

if [ "${1:-}" = "--dir" ]; then echo "$out/bin"; exit 0; fi
if [ -f "$out/complete" ]; then echo "$out/bin"; exit 0; fi

# The go command must not rewrite go.mod/go.sum in a clean clone, and must use this
# machine's Go (a toolchain line in a dependency must not trigger a download).
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0

if [ ! -f "$controllers_dir/complete" ]; then
  start=$(date +%s)
  echo "build.sh: building Flux's ${controllers[*]} into $controllers_dir (first time only; ~10 minutes of CPU each)" >&2
  rm -rf "$controllers_dir" && mkdir -p "$controllers_dir/bin" "$controllers_dir/crds"
  pids=()
  for m in "${controllers[@]}"; do
    # Both at once: each is mostly one long compile and link.
    (cd "$here/$m" && go build -trimpath -ldflags "-s -w" -o "$controllers_dir/bin/$m" "github.com/fluxcd/$m") &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  for m in "${controllers[@]}"; do
    dir=$(cd "$here/$m" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$m")
    cp "$dir"/config/crd/bases/*.yaml "$controllers_dir/crds/"
  done
  chmod -R u+w "$controllers_dir/crds"
  echo "build.sh: ${controllers[*]} and $(ls "$controllers_dir/crds" | wc -l) CRDs, done in $(( $(date +%s) - start )) s" >&2
  touch "$controllers_dir/complete"
fi
if [ ! -f "$gitserver_dir/complete" ]; then
  rm -rf "$gitserver_dir" && mkdir -p "$gitserver_dir"
  (cd "$here/gitserver" && go build -trimpath -ldflags "-s -w" -o "$gitserver_dir/gitserver" .)
  touch "$gitserver_dir/complete"
fi

rm -rf "$out" && mkdir -p "$out/bin"
for m in "${controllers[@]}"; do ln -s "$controllers_dir/bin/$m" "$out/bin/$m"; done
ln -s "$gitserver_dir/gitserver" "$out/bin/gitserver"
cp -r "$controllers_dir/crds" "$out/crds"
touch "$out/complete"
echo "$out/bin"

#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (its `server -s3` is the S3-compatible store the tests and the demo
# use) from the module pinned in e2e/objectstore/seaweedfs/go.mod, into a cache folder outside
# the repository keyed by the module files and the Go version; a matching cache is reused.
#
#   e2e/objectstore/build.sh          build if needed, print the path of `weed`
#   e2e/objectstore/build.sh --path   print the path only (the binary may not exist yet)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
key=$(cat "$here/build.sh" "$here"/seaweedfs/go.mod "$here"/seaweedfs/go.sum "$here"/seaweedfs/tools.go <(go version) \
      | sha256sum | cut -c1-16)
out="$cache_root/seaweedfs/$key"

if [ "${1:-}" = "--path" ]; then echo "$out/weed"; exit 0; fi
if [ ! -x "$out/weed" ]; then
  mkdir -p "$out"
  echo "build.sh: building SeaweedFS into $out (first time only)" >&2
  start=$(date +%s)
  (cd "$here/seaweedfs" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0 \
     go build -trimpath -ldflags "-s -w" -o "$out/weed.tmp" github.com/seaweedfs/seaweedfs/weed)
  mv "$out/weed.tmp" "$out/weed"
  echo "build.sh: SeaweedFS built in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/weed"

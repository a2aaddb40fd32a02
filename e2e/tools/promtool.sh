#!/usr/bin/env bash
# Builds Prometheus's promtool (`check rules`, `test rules` for the chart's alerts) from the
# module pinned in e2e/tools/promtool/go.mod, into a cache folder outside the repository keyed
# by the module files and the Go version; a matching cache is reused. Apart from build.sh's
# tools: Prometheus's module graph is large and would change theirs.
#
#   e2e/tools/promtool.sh          build if needed, print the path of promtool
#   e2e/tools/promtool.sh --path   print the path only (it may not exist yet)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
key=$(cat "$here/promtool.sh" "$here"/promtool/go.{mod,sum} "$here"/promtool/tools.go <(go version) \
      | sha256sum | cut -c1-16)
out="$cache_root/promtool/$key"

if [ "${1:-}" = "--path" ]; then echo "$out/promtool"; exit 0; fi
if [ ! -x "$out/promtool" ]; then
  mkdir -p "$out"
  echo "promtool.sh: building promtool into $out (first time only)" >&2
  start=$(date +%s)
  (cd "$here/promtool" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0 \
     go build -trimpath -ldflags "-s -w" -o "$out/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool)
  mv "$out/promtool.tmp" "$out/promtool"
  echo "promtool.sh: built in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/promtool"

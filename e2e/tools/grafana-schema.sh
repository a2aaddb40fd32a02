#!/usr/bin/env bash
# Checks the chart's Grafana dashboard (charts/ciclo/files/grafana-dashboard.json) against
# Grafana's dashboard schema: the types @grafana/schema publishes (generated from Grafana's
# own CUE schema), by the TypeScript compiler, strictly: a key the schema does not know, a
# value of the wrong type or a missing required field fails. First, a copy with one key
# misspelled must fail, so the check is known to bite. The packages (pinned by
# e2e/tools/grafana-schema/package-lock.json) are installed once into a cache folder keyed
# by the lockfile.
#
#   e2e/tools/grafana-schema.sh [DASHBOARD.json]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}
key=$(cat "$here/grafana-schema.sh" "$here/grafana-schema/package-lock.json" <(node --version) \
      | sha256sum | cut -c1-16)
out="$cache_root/grafana-schema/$key"
dashboard=${1:-$root/charts/ciclo/files/grafana-dashboard.json}

if [ ! -x "$out/node_modules/.bin/tsc" ]; then
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  cp "$here/grafana-schema/package.json" "$here/grafana-schema/package-lock.json" "$out.tmp/"
  (cd "$out.tmp" && npm ci --no-audit --no-fund --silent)
  rm -rf "$out" && mv "$out.tmp" "$out"
fi

# Inside the cache folder, so that the import finds its node_modules.
work=$(mktemp -d "$out/check.XXXXXX")
trap 'rm -rf "$work"' EXIT
typecheck() { # JSON file → the TypeScript compiler's verdict on it as a Dashboard
  { echo "import type { Dashboard } from '@grafana/schema';"
    printf 'export const dashboard: Dashboard = '
    cat "$1"
    echo ';'
  } >"$work/dashboard.ts"
  "$out/node_modules/.bin/tsc" --noEmit --strict --target es2022 --module nodenext \
    --moduleResolution nodenext "$work/dashboard.ts"
}

sed '0,/"schemaVersion"/s//"schemaVersoin"/' "$dashboard" >"$work/misspelled.json"
if typecheck "$work/misspelled.json" >/dev/null; then
  echo "grafana-schema.sh: a dashboard with a misspelled key passed: the check checks nothing" >&2
  exit 1
fi
typecheck "$dashboard"
version=$(node -p "require('$out/node_modules/@grafana/schema/package.json').version")
echo "grafana-schema.sh: $(basename "$dashboard") is a Dashboard of @grafana/schema $version"

#!/usr/bin/env bash
# Builds the tools that check the Helm chart and the kustomize manifests, from the Go
# modules pinned in e2e/tools/{helm,kubeconform,schemagen}/go.mod, into a cache folder
# outside the repository keyed by everything that decides the output; a matching cache is
# reused as is. Beside bin/ it writes schemas/: strict JSON schemas in kubeconform's layout
# for every built-in kind of the Kubernetes release the local control plane is built from
# (e2e/cluster/k8s/go.mod) and for the Prometheus Operator's ServiceMonitor and
# PrometheusRule, because kubeconform's default schemas live on a web server that CI cannot
# reach.
#
#   e2e/tools/build.sh          build if needed, print the bin directory
#   e2e/tools/build.sh --dir    print the bin directory only (may not exist yet)
#
# Beside bin/ (helm, kubeconform, schemagen) are schemas/, read with
#   kubeconform -schema-location "$(dirname "$bin")/schemas/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
# and openapi-v3/, Kubernetes' own OpenAPI documents, from which schemagen takes ObjectMeta
# when e2e/chart/check.sh makes the schemas of ciclo's kinds from crds/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache_root=${CICLO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ciclo}

required() { # module go.mod: the version go.mod requires
  local v
  v=$(awk -v m="$1" '($1 == "require" && $2 == m) {print $3} ($1 == m) {print $2}' "$2" | head -1)
  [ -n "$v" ] || { echo "build.sh: no require of $1 in $2" >&2; exit 1; }
  echo "$v"
}
helm_version=$(required helm.sh/helm/v4 "$here/helm/go.mod")
kubeconform_version=$(required github.com/yannh/kubeconform "$here/kubeconform/go.mod")
k8s_version=$(required k8s.io/kubernetes "$repo/e2e/cluster/k8s/go.mod")

# The ServiceMonitor CRD ships as YAML in prometheus-operator's main module, which no
# module here imports (its dependencies would change Helm's), so its version and the
# module hash the go command checks it against are pinned here. v0.85.0 is the newest
# version of that module the proxy serves; ServiceMonitor is monitoring.coreos.com/v1 in it.
promop_module=github.com/prometheus-operator/prometheus-operator
promop_version=v0.85.0
promop_sum=h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=
servicemonitor_crd=example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
prometheusrule_crd=example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml

key=$(cat "$here/build.sh" "$here"/{helm,kubeconform,schemagen}/go.{mod,sum} \
        "$here"/{helm,kubeconform}/tools.go $(ls "$here"/schemagen/*.go | grep -v _test.go) \
        <(echo "$k8s_version") <(go version) \
      | sha256sum | cut -c1-16)
out="$cache_root/tools/$key"

if [ "${1:-}" = "--dir" ]; then echo "$out/bin"; exit 0; fi
if [ -f "$out/complete" ]; then echo "$out/bin"; exit 0; fi

# The go command must not rewrite go.mod/go.sum in a clean clone, and must use this
# machine's Go (a toolchain line in a dependency must not trigger a download).
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0

# module_dir MODULE < `go mod download -json` output: where the go command put the
# module's verified source.
module_dir() {
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' | grep . || { echo "build.sh: $1 not downloaded" >&2; exit 1; }
}

start=$(date +%s)
echo "build.sh: building helm $helm_version, kubeconform $kubeconform_version and the schemas of Kubernetes $k8s_version into $out (first time only)" >&2
rm -rf "$out" && mkdir -p "$out/bin"
echo "build.sh:   helm" >&2
(cd "$here/helm" && go build -trimpath -o "$out/bin/helm" \
   -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" helm.sh/helm/v4/cmd/helm)
echo "build.sh:   kubeconform" >&2
(cd "$here/kubeconform" && go build -trimpath -o "$out/bin/kubeconform" \
   -ldflags "-s -w -X main.version=$kubeconform_version" github.com/yannh/kubeconform/cmd/kubeconform)
echo "build.sh:   schemagen" >&2
(cd "$here/schemagen" && go build -trimpath -ldflags "-s -w" -o "$out/bin/schemagen" .)

# Kubernetes' OpenAPI documents, from the module the control plane is built from, checked
# against that module's go.sum.
k8s_dir=$(cd "$repo/e2e/cluster/k8s" && go mod download -json k8s.io/kubernetes | module_dir k8s.io/kubernetes)
# A copy stays beside the schemas: check.sh takes ObjectMeta from it for ciclo's own kinds.
cp -r "$k8s_dir/api/openapi-spec/v3" "$out/openapi-v3" && chmod -R u+w "$out/openapi-v3"
openapi="$out/openapi-v3"
echo "build.sh:   schemas of Kubernetes $k8s_version" >&2
"$out/bin/schemagen" k8s "$openapi" "$out/schemas"

promop_json=$(tmp=$(mktemp -d) && cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$promop_module@$promop_version"; rm -rf "$tmp")
grep -q "\"Sum\": \"$promop_sum\"" <<<"$promop_json" \
  || { echo "build.sh: $promop_module@$promop_version is missing or does not match $promop_sum" >&2; exit 1; }
echo "build.sh:   schemas of ServiceMonitor and PrometheusRule ($promop_module $promop_version)" >&2
promop_dir=$(module_dir "$promop_module" <<<"$promop_json")
"$out/bin/schemagen" crd "$openapi" "$out/schemas" "$promop_dir/$servicemonitor_crd" "$promop_dir/$prometheusrule_crd"

echo "build.sh: helm $("$out/bin/helm" version --short), kubeconform $("$out/bin/kubeconform" -v), done in $(( $(date +%s) - start )) s" >&2
touch "$out/complete"
echo "$out/bin"

#!/usr/bin/env bash
# The gate on what users install: the Helm chart and the kustomize manifests must render,
# and everything they render must be valid against the Kubernetes API the project targets,
# strictly (a misspelt field is an error, not something the API server drops in silence).
# Run from the repository root; prints one line per check and fails if any check does.
#
#   e2e/chart/check.sh [CHART_DIR]     (default charts/ciclo)
#
# 1. helm lint --strict, with the chart's defaults and with each ci/*-values.yaml;
# 2. helm template with the same value sets, every document through kubeconform -strict
#    against offline schemas: Kubernetes' built-in kinds and ServiceMonitor (made by
#    e2e/tools/build.sh) and ciclo's own kinds (made here from crds/, which changes with
#    the code); a kind without a schema is an error, and so is a render with no document;
# 3. kubectl kustomize manifests/base, each manifests/overlays/* and examples/gitops/ml-team, through kubeconform;
# 4. examples/*.yaml through kubeconform (ciclo's kinds, strictly);
# 5. the gate itself: values with an unknown key or a wrong type must fail helm lint and
#    helm template naming the field (values.schema.json), and kubeconform must fail an
#    invalid Deployment and Dataset naming the field, and a kind it has no schema for.
set -uo pipefail

chart=${1:-charts/ciclo}
kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' e2e/cluster/k8s/go.mod)
release=ciclo
namespace=ciclo-system

bin=$(e2e/tools/build.sh) || { echo "check.sh: e2e/tools/build.sh failed" >&2; exit 1; }
helm=$bin/helm
kubeconform=$bin/kubeconform
tools=$(dirname "$bin")
# Where schemagen puts each schema (see e2e/tools/schemagen/main.go).
layout='{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ciclo's kinds change with the code, so their schemas are made afresh on every run.
ciclo_schemas=$work/ciclo-schemas
"$bin/schemagen" crd "$tools/openapi-v3" "$ciclo_schemas" crds/*.yaml 2>"$work/log" \
  || { cat "$work/log" >&2; echo "check.sh: no schemas for ciclo's kinds from crds/" >&2; exit 1; }

passed=0 failed=0
pass() { echo "ok    $1"; passed=$((passed + 1)); }
fail() { # NAME LOG: the line, then what the tool said, indented
  echo "FAIL  $1"; sed 's/^/      /' "$2" | head -40; failed=$((failed + 1))
}
# check NAME CMD...: passes when CMD succeeds.
check() {
  local name=$1 log=$work/log; shift
  if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name" "$log"; fi
}
# refuses NAME PATTERN CMD...: passes when CMD fails and its output matches PATTERN (what
# the failure must name), so that a failure for some other reason does not count.
refuses() {
  local name=$1 pattern=$2 log=$work/log; shift 2
  if "$@" >"$log" 2>&1; then
    echo "(it succeeded)" >>"$log"; fail "$name" "$log"
  elif ! grep -qE -- "$pattern" "$log"; then
    echo "(it failed without naming /$pattern/)" >>"$log"; fail "$name" "$log"
  else pass "$name"; fi
}

# validate FILE: every document valid, strictly; a kind without a schema fails, and so does
# a file without any document (a render that silently produced nothing).
validate() {
  local out rc
  out=$("$kubeconform" -strict -summary -output text \
          -schema-location "$tools/schemas/$layout" \
          -schema-location "$ciclo_schemas/$layout" "$1" 2>&1)
  rc=$?
  echo "$out"
  [ "$rc" -eq 0 ] && ! grep -qE 'Summary: 0 resources? found' <<<"$out"
}
# rendered NAME FILE CMD...: CMD must succeed, writing FILE, and FILE must validate; the
# line says how many documents were checked.
rendered() {
  local name=$1 file=$2 log=$work/log; shift 2
  if ! "$@" >"$file" 2>"$log"; then
    fail "$name" "$log"
  elif validate "$file" >"$log" 2>&1; then
    pass "$name: $(grep -oE '[0-9]+ resources? found' "$log" | sed 's/ found//') valid"
  else
    fail "$name" "$log"
  fi
}

echo "chart: helm $("$helm" version --short), kubeconform $("$kubeconform" -v), schemas of Kubernetes $kube_version"

# 1 and 2: every value set the chart is tested with.
for values in defaults "$chart"/ci/*-values.yaml; do
  flags=()
  if [ "$values" != defaults ]; then
    [ -f "$values" ] || continue
    flags=(-f "$values")
  fi
  label=${values#"$chart"/}
  check "helm lint --strict ($label)" \
    "$helm" lint --strict --kube-version "$kube_version" "$chart" "${flags[@]}"
  rendered "helm template | kubeconform ($label)" "$work/render-$(basename "$values" .yaml).yaml" \
    "$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" "${flags[@]}"
done

# 3: the kustomize install, base and overlays, with the control plane's own kubectl.
kubectl=$(e2e/cluster/build.sh --dir)/kubectl
if [ ! -x "$kubectl" ]; then
  kubectl=$(command -v kubectl || true)
  [ -z "$kubectl" ] || echo "note  the control plane is not built: kustomize runs with $kubectl"
fi
if [ -z "$kubectl" ]; then
  echo "FAIL  kubectl kustomize: no kubectl (run 'make control-plane' first)"
  failed=$((failed + 1))
else
  # ...and the team repository of examples/gitops, as Argo CD or Flux would build it.
  for dir in manifests/base manifests/overlays/* examples/gitops/ml-team; do
    [ -f "$dir/kustomization.yaml" ] || continue
    rendered "kubectl kustomize $dir | kubeconform" "$work/kustomize-$(basename "$dir").yaml" \
      "$kubectl" kustomize "$dir"
  done
fi

# 4: the examples users start from.
for example in examples/*.yaml; do
  [ -f "$example" ] && check "kubeconform $example" validate "$example"
done

# 5: the gate refuses what it must.
# values_refused WHAT FIELD VALUES: helm lint and helm template must both refuse VALUES,
# naming FIELD (the chart's values.schema.json at work).
values_refused() {
  printf '%s\n' "$3" >"$work/bad-values.yaml"
  refuses "helm lint refuses $1, naming $2" "$2" \
    "$helm" lint --strict "$chart" -f "$work/bad-values.yaml"
  refuses "helm template refuses $1, naming $2" "$2" \
    "$helm" template "$release" "$chart" -f "$work/bad-values.yaml"
}
values_refused "an unknown key" notAValue 'notAValue: 1'
values_refused "a wrong type" replicaCount 'replicaCount: two'

cat >"$work/invalid-deployment.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: invalid}
spec:
  replicas: two
  selector: {matchLabels: {app: invalid}}
  template:
    metadata: {labels: {app: invalid}}
    spec:
      containers:
      - {name: c, image: busybox, imagePullPolicyy: Always}
YAML
refuses "kubeconform refuses a Deployment with a misspelt field, naming it" \
  "'imagePullPolicyy' not allowed" validate "$work/invalid-deployment.yaml"
refuses "kubeconform refuses a Deployment with a wrong type, naming it" \
  "/spec/replicas': got string" validate "$work/invalid-deployment.yaml"

cat >"$work/invalid-dataset.yaml" <<'YAML'
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: invalid}
spec: {notAField: true}
YAML
refuses "kubeconform refuses a Dataset with an unknown field, naming it" \
  "'notAField' not allowed" validate "$work/invalid-dataset.yaml"

printf 'apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n' >"$work/unknown-kind.yaml"
refuses "kubeconform refuses a kind it has no schema for" \
  "could not find schema for Gadget" validate "$work/unknown-kind.yaml"

echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

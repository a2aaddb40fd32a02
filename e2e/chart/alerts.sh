#!/usr/bin/env bash
# The chart's alerts, checked by Prometheus's own promtool: the PrometheusRule the chart
# renders (prometheusRule.enabled) must be a valid rules file (`promtool check rules`: PromQL
# that parses, templates that expand, no duplicate rule), and every alert must fire, with its
# labels and annotations, on the series of e2e/chart/alerts-test.yaml (`promtool test rules`).
# That each metric the rules name is one the operator exports is a unit test of
# operator/controller/src/metrics.rs. Run from the repository root.
set -euo pipefail

promtool=$(e2e/tools/promtool.sh)
helm=$(e2e/tools/build.sh)/helm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$helm" template ciclo charts/ciclo --namespace ciclo-system --set prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml >"$work/prometheusrule.yaml"
# A PrometheusRule's spec is a rules file's content.
python3 - "$work/prometheusrule.yaml" "$work/rules.yaml" <<'PY'
import sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
assert rule["kind"] == "PrometheusRule", rule["kind"]
yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"), sort_keys=False)
PY
cp e2e/chart/alerts-test.yaml "$work/"
"$promtool" check rules "$work/rules.yaml"
"$promtool" test rules "$work/alerts-test.yaml"
echo "alerts.sh: the chart's alerts pass promtool check rules and test rules"

# ciclo's verbs. `make test` is the one test command; `.ci/run` calls it on a clean clone.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# The control plane's kubectl, built by e2e/cluster/build.sh; helm, built by e2e/tools/build.sh.
KUBECTL = $(shell e2e/cluster/build.sh --dir)/kubectl
HELM = $(shell e2e/tools/build.sh --dir)/helm
export KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig

.PHONY: help build test unit e2e bench lint fmt cluster-up cluster-down cluster-purge objectstore-up objectstore-down flux-up flux-down control-plane tools image example-images demo demo-down crds docs health-checks manifests manifests-check deploy

help: ## list the verbs
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## build every binary (debug), with ONNX Runtime's library beside `ciclo` for ONNX models
	$(CARGO) build --workspace --bins
	install -m 0644 "$$(e2e/onnxruntime/fetch.sh)" "$${CARGO_TARGET_DIR:-target}/debug/libonnxruntime.so.1"

test: unit manifests-check e2e ## unit tests, the install manifests' checks, then the end-to-end tests against the local control plane

# The e2e tests are #[ignore]d so that `unit` skips them; both verbs build the same workspace
# test targets, so neither rebuilds what the other built.
unit: ## unit tests only (no cluster)
	$(CARGO) test --workspace

e2e: cluster-up objectstore-up deploy example-images flux-up ## end-to-end tests (starts the control plane, the S3 store, the git server and Flux; installs ciclo from its chart)
	@# Built first, on the host: inside the cluster's network namespace nothing can be fetched.
	$(CARGO) test --workspace --tests --no-run
	@# The browser of ciclo ui's test (Debian's Chromium and ChromeDriver), installed when missing.
	e2e/tools/browser.sh >/dev/null
	e2e/upgrade/previous.sh >/dev/null
	KUBECTL=$(KUBECTL) HELM=$(HELM) e2e/cluster/in-cluster-netns.sh $(CARGO) test --workspace --tests --no-fail-fast -- --ignored --test-threads=4 --skip an_upgrade_mid_run
	@# Alone, last: it installs the previous release over the cluster's operator and upgrades it back.
	KUBECTL=$(KUBECTL) HELM=$(HELM) e2e/cluster/in-cluster-netns.sh $(CARGO) test -p ciclo-e2e --test upgrade -- --ignored

example-images: ## build the example trainer's and runtime's images from their Containerfiles (cached) and load them into the kubelet node
	@if grep -qx NODE_KIND=kubelet .cluster/ports.env 2>/dev/null; then \
	  e2e/cluster/load-image.sh "$$(e2e/cluster/app-image.sh examples/trainers/sklearn localhost/ciclo-examples/sklearn-trainer:e2e)"; \
	  e2e/cluster/load-image.sh "$$(e2e/cluster/app-image.sh examples/runtimes/mlserver localhost/ciclo-examples/mlserver-onnx:e2e)"; \
	else echo "example-images: no kubelet node (the process node runs no images)"; fi

bench: ## benchmarks, each figure beside its peer: hashing vs b3sum, re-snapshot, memory, a sharded check with 1, 2 and 4 workers (equality and a cost model), profiling vs Polars, 10,000 TrainingRuns vs 10,000 Jobs and 1000 ModelDeployments vs 1000 Deployments (local cluster), one TrainingRun iterated 200 times (soak), serving over REST and gRPC beside a bare server and MLServer (model.json and an exporter-made ONNX file), and with capture at 10 % and 100 %
	e2e/bench/snapshot.sh
	e2e/bench/sharding.sh
	e2e/bench/profile.sh
	BENCH_TRAININGRUNS=$${BENCH_TRAININGRUNS:-10000} e2e/bench/trainingruns.sh
	e2e/bench/modeldeployments.sh
	e2e/bench/soak.sh
	e2e/bench/serve.sh

lint: ## formatting and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

control-plane: ## build Kubernetes and etcd from the pinned upstream modules (cached)
	e2e/cluster/build.sh >/dev/null

tools: ## build helm and kubeconform from their pinned Go modules (cached)
	e2e/tools/build.sh >/dev/null

cluster-up: control-plane ## start the local cluster: etcd, the control plane and a kubelet node (containerd, kube-proxy, CoreDNS) in a private network namespace; CLUSTER_NODE=process for the process node
	$(CARGO) build --workspace --bins
	e2e/cluster/up.sh

cluster-down: ## stop everything cluster-up started (keeps .cluster/ state), and Flux first if it runs
	e2e/flux/down.sh
	e2e/cluster/down.sh

cluster-purge: ## stop the cluster and delete .cluster/
	e2e/flux/down.sh
	e2e/cluster/down.sh --purge

objectstore-up: ## start the S3-compatible store (SeaweedFS, built once) on port 18333: in the kubelet node's network namespace (10.200.0.1), else on 127.0.0.1
	e2e/objectstore/up.sh

objectstore-down: ## stop the S3-compatible store
	e2e/objectstore/down.sh

flux-up: cluster-up ## start a git server (port 18419) and Flux's source-controller and kustomize-controller (built once from their pinned Go modules) beside the local cluster
	e2e/flux/up.sh

flux-down: ## stop the git server and Flux's controllers (keeps .flux/: the repositories)
	e2e/flux/down.sh

image: ## the container image: operator/Dockerfile's final stage built with buildah (cached OCI archive), then checked
	e2e/image/build.sh
	e2e/image/test.sh

demo: ## the whole ML cycle, three times, on the local control plane (or KUBECONFIG's cluster): data → validation → training → gated canary → serving → skew → retraining on production's labelled data; GITOPS=1: driven by commits to a local git server that Flux applies, promotions committed by ciclo
	GITOPS=$(GITOPS) e2e/demo/run.sh

demo-down: ## stop everything `make demo` started (the demo's namespace, the local cluster, the S3 store)
	-$(KUBECTL) delete namespace ml-team --ignore-not-found --wait=false --request-timeout=10s 2>/dev/null
	e2e/objectstore/down.sh
	e2e/flux/down.sh
	e2e/cluster/down.sh

crds: ## regenerate crds/ from the Rust API types
	$(CARGO) run -q -p ciclo -- crds > crds/ciclo.dev.yaml

docs: ## regenerate docs/reference/crds.md from crds/ (after `make crds`; a test fails when it is stale)
	$(CARGO) run -q -p ciclo-crd-docs -- crds/ciclo.dev.yaml docs/reference/crds.md

health-checks: ## the Argo CD health checks (manifests/argocd) against their samples, in gopher-lua (Argo CD's Lua)
	e2e/health/test.sh

# kustomize's base is the chart rendered with its defaults (CRDs come from crds/ instead),
# without Helm's own labels: one source for both ways of installing.
MANIFESTS_RENDER = $(HELM) template ciclo charts/ciclo --namespace ciclo-system --set crds.install=false \
	| grep -vE '^ +(helm.sh/chart|app.kubernetes.io/managed-by): '

manifests: tools ## regenerate manifests/base/ciclo.yaml from charts/ciclo
	$(MANIFESTS_RENDER) > manifests/base/ciclo.yaml

manifests-check: tools control-plane ## helm lint + strict schema check of the chart and kustomize, staleness of manifests/base, promtool on the chart's alerts, the Grafana dashboard against @grafana/schema, the Argo CD health checks
	@diff -u manifests/base/ciclo.yaml <($(MANIFESTS_RENDER)) \
	  || { echo "manifests/base/ciclo.yaml is stale: run 'make manifests'"; exit 1; }
	cd e2e/tools/schemagen && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test ./...
	e2e/chart/check.sh
	e2e/chart/alerts.sh
	e2e/tools/grafana-schema.sh
	e2e/health/test.sh

deploy: build tools ## install (or upgrade) ciclo into the local cluster from charts/ciclo (e2e/deploy/values.yaml) and wait for it
	KUBECTL=$(KUBECTL) HELM=$(HELM) e2e/deploy/install.sh

# Maestro ML — every set-up step lives here, so a fresh clone needs only `make demo`
# or `make test`. Build outputs and caches go to .maestro/ and .venv/ (git-ignored).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .maestro/uv/venv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
BIN := .maestro/bin
# mypy's cache is kept per user, as the built binaries are: it checks each entry against the
# file's hash, so a fresh clone reuses it instead of checking every module cold (~45 s).
MYPY_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/maestro-ml/mypy
KUBECONFIG_LOCAL := .maestro/kubeconfig
KUBECTL := $(BIN)/kubectl --kubeconfig $(KUBECONFIG_LOCAL)
BINARIES := $(addprefix $(BIN)/,etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install binaries actionlint vault seaweedfs metrics-server prometheus-adapter coredns training-operator jaeger upstream-crds services cluster-up cluster-down manifests grpc-stubs lint \
        test test-fault chaos test-autoscaling test-distributed test-overload fuzz test-unit e2e bench-training bench-operator bench-serving bench-tracing bench-abtest bench-drift bench-autoscaling demo demo-traffic demo-drift down kind-up kind-down clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .maestro/uv/venv
	.maestro/uv/venv/bin/pip install -q uv==$(UV_VERSION)

# Bytecode compiled once here: the environment may set PYTHONDONTWRITEBYTECODE, and then
# every process (each trainer and serving pod) would recompile what it imports.
$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --compile-bytecode --python $(PYTHON)
	touch $@

install: $(VENV)/.installed ## create .venv with every component's dependencies (uv, locked)

$(BINARIES) &: tools/k8s/go.mod tools/kwok/go.mod tools/build-binaries.sh
	BIN=$(abspath $(BIN)) tools/build-binaries.sh

binaries: $(BINARIES) $(BIN)/vault $(BIN)/weed $(BIN)/metrics-server $(BIN)/prometheus-adapter $(BIN)/coredns $(BIN)/training-operator $(BIN)/jaeger ## build etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok, Vault, SeaweedFS, metrics-server, prometheus-adapter, CoreDNS, the training operator and Jaeger from Go modules

# The script leaves an up-to-date binary alone; touch it so make does not ask again.
$(BIN)/actionlint: tools/actionlint/go.mod tools/build-actionlint.sh
	BIN=$(abspath $(BIN)) tools/build-actionlint.sh
	touch $@

actionlint: $(BIN)/actionlint ## build actionlint (the GitHub Actions workflow linter) from its Go module

$(BIN)/vault: tools/vault/go.mod tools/vault/go.sum $(wildcard tools/vault/sdk-compat/*) tools/build-vault.sh
	BIN=$(abspath $(BIN)) tools/build-vault.sh
	touch $@

# The local platform runs it (`binaries` needs it): secrets of serving pods.
vault: $(BIN)/vault ## build Vault v1.14.8 (server, CLI, agent; the last MPL-2.0 release) from its Go module (~11 min cold)

$(BIN)/weed: tools/seaweedfs/go.mod tools/seaweedfs/go.sum tools/build-seaweedfs.sh
	BIN=$(abspath $(BIN)) tools/build-seaweedfs.sh
	touch $@

# The local platform runs it (`binaries` needs it): the object store (S3 API).
seaweedfs: $(BIN)/weed ## build SeaweedFS 4.53 (`weed`: the local object store, S3 API) from its Go module (~5 min cold)

$(BIN)/metrics-server: tools/metrics-server/go.mod tools/metrics-server/go.sum tools/build-metrics-server.sh
	BIN=$(abspath $(BIN)) tools/build-metrics-server.sh
	touch $@

# The local platform runs it (`binaries` needs it): metrics.k8s.io for `kubectl top` and the HPA.
metrics-server: $(BIN)/metrics-server ## build metrics-server v0.8.0 (metrics.k8s.io from kwok's kubelet resource metrics) from its Go module (~7 min cold)

$(BIN)/prometheus-adapter: tools/prometheus-adapter/go.mod tools/prometheus-adapter/go.sum tools/build-prometheus-adapter.sh
	BIN=$(abspath $(BIN)) tools/build-prometheus-adapter.sh
	touch $@

# The local platform runs it with Prometheus (`binaries` needs it): custom.metrics.k8s.io.
prometheus-adapter: $(BIN)/prometheus-adapter ## build prometheus-adapter v0.12.0 (custom.metrics.k8s.io from Prometheus) from its Go module (~3 min cold)

$(BIN)/coredns: tools/coredns/go.mod tools/coredns/go.sum tools/coredns/main.go tools/build-coredns.sh
	BIN=$(abspath $(BIN)) tools/build-coredns.sh
	touch $@

# The local platform runs it (`binaries` needs it): the cluster DNS on 10.96.0.10:53.
coredns: $(BIN)/coredns ## build CoreDNS v1.12.1 (the cluster DNS: kubernetes, forward, cache, ... plugins) from its Go module (~4 min cold)

$(BIN)/training-operator: tools/training-operator/go.mod tools/training-operator/go.sum tools/training-operator/tools.go tools/build-training-operator.sh
	BIN=$(abspath $(BIN)) tools/build-training-operator.sh
	touch $@

# The local platform runs it (`binaries` needs it): PyTorchJob, TFJob, XGBoostJob -> pods and Services.
training-operator: $(BIN)/training-operator ## build Kubeflow's training operator v1.8.1 from its Go module (~2.5 min cold)

$(BIN)/jaeger: tools/jaeger/go.mod tools/jaeger/go.sum tools/jaeger/tools.go tools/build-jaeger.sh
	BIN=$(abspath $(BIN)) tools/build-jaeger.sh
	touch $@

# The local platform runs it (`binaries` needs it): OTLP receiver and query API for traces.
jaeger: $(BIN)/jaeger ## build Jaeger v1.76.0 all-in-one (OTLP in, in-memory storage, query API) from its Go module (~5 min cold)

.maestro/crds/.fetched: tools/fetch-upstream-crds.sh
	OUT=$(abspath .maestro/crds) tools/fetch-upstream-crds.sh
	touch $@

upstream-crds: .maestro/crds/.fetched ## Kubeflow, Istio, Prometheus Operator CRDs from their Go modules

services: ## install (when absent) PostgreSQL, Redis, Prometheus and Alertmanager from Debian's packages; start PostgreSQL and Redis
	tools/services.sh

cluster-up: install binaries upstream-crds ## start the local control plane (kubeconfig: .maestro/kubeconfig)
	$(PY) -m maestro.localplatform.cluster up

cluster-down: ## stop the local control plane
	$(PY) -m maestro.localplatform.cluster down

manifests: install ## regenerate manifests/crds from the typed models, and manifests/monitoring's rule files and dashboards from monitoring/
	$(PY) -m maestro.operators.api.crdgen manifests/crds
	$(PY) -m maestro.operators.rulegen manifests/monitoring
	$(PY) -m maestro.monitoring.dashboards manifests/monitoring/dashboards

grpc-stubs: install ## regenerate serving/proto's messages from the vendored grpc_predict_v2.proto (committed)
	$(PY) -m maestro.serving.proto.generate

AREAS := operators serving training governance monitoring security localplatform storage

# mypy cannot follow the editable install's import hook that maps each folder to
# maestro.<area>, so it reads them through a tree of symlinks with those names.
# actionlint lints .github/workflows, with shellcheck on the run: scripts when present.
lint: install $(BIN)/actionlint ## ruff, mypy (strict, on the packages; tests excluded), the import layering contracts, detect-secrets, actionlint (workflows)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	mkdir -p .maestro/typecheck/maestro
	for area in $(AREAS); do ln -sfn ../../../$$area .maestro/typecheck/maestro/$$area; done
	MYPYPATH=.maestro/typecheck $(VENV)/bin/mypy --cache-dir $(MYPY_CACHE) $(addprefix -p maestro.,$(AREAS))
	$(VENV)/bin/lint-imports
	@# A secret not in .secrets.baseline (the local platform's development credentials and
	@# test fixtures, audited) fails; exit 3 only means the baseline's line numbers moved.
	$(VENV)/bin/detect-secrets-hook --baseline .secrets.baseline $$(git ls-files) || [ $$? -eq 3 ]
	tools/install-shellcheck.sh
	$(BIN)/actionlint $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)

test: install binaries upstream-crds services lint ## all set-up, then the whole suite
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fault: install binaries upstream-crds services ## long fault runs: a crash storm of 50 ModelDeployments, then `make down`'s teardown (about 3 minutes)
	$(VENV)/bin/pytest -m fault $(PYTEST_ARGS)

chaos: install binaries upstream-crds services ## the operator SIGKILLed 60 times during reconciles of every kind (with 2 more ModelDeployments and 2 more TrainingRuns than make test's run), then checked for duplicates, orphans, lost status and runs trained twice (about 6 minutes)
	MAESTRO_CHAOS_KILLS=$${MAESTRO_CHAOS_KILLS:-60} MAESTRO_CHAOS_EXTRA=$${MAESTRO_CHAOS_EXTRA:-2} $(VENV)/bin/pytest tests/cluster/test_operator_crash.py -s $(PYTEST_ARGS)

test-autoscaling: install binaries upstream-crds services ## ModelDeployments scaling on CPU and on requests/s under sustained load, and a canary at 10% holding the stable's floor, counting failed requests (about 7 minutes; left out of `make test`)
	$(VENV)/bin/pytest -m scale tests/cluster/test_autoscaling.py $(PYTEST_ARGS)

fuzz: install ## hypothesis fuzzing of maestro serve's requests and the spec models, 3,000 fresh examples per property (about 5 minutes; make test runs a fixed 150-300)
	MAESTRO_FUZZ_EXAMPLES=$${MAESTRO_FUZZ_EXAMPLES:-3000} $(VENV)/bin/pytest tests/unit/test_serving_fuzz.py tests/unit/test_spec_fuzz.py $(PYTEST_ARGS)

test-distributed: install binaries upstream-crds services ## PyTorch DDP and XGBoost TrainingRuns across 2 pods through Kubeflow's training operator, a failing worker, bad input (left out of `make test`)
	$(VENV)/bin/pytest -m cluster tests/cluster/test_distributed_training.py $(PYTEST_ARGS)

test-overload: install ## maestro serve at twice the load it sustains for 60 s, SIGTERM under load, then a 10-minute soak at steady load with flat memory (about 12 minutes) -> docs/benchmarks.md
	MAESTRO_OVERLOAD_REPORT=1 MAESTRO_OVERLOAD_SECONDS=$${MAESTRO_OVERLOAD_SECONDS:-60} $(VENV)/bin/pytest -m "overload or not overload" tests/integration/test_serving_overload.py $(PYTEST_ARGS)

test-unit: install ## only the pure unit tests (no binaries, cluster or services: `make install` is enough)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

e2e: install ## the e2e suite against KUBECONFIG (any cluster)
	$(VENV)/bin/pytest tests/e2e --kubeconfig "$${KUBECONFIG:?set KUBECONFIG to the cluster to test}" $(PYTEST_ARGS)

bench-training: install binaries upstream-crds services ## TrainingRun search vs Optuna alone; PyTorch DDP with 1 vs 2 workers through the training operator -> docs/benchmarks.md
	$(PY) -m tests.bench.training
	$(PY) -m tests.bench.distributed

bench-operator: install binaries upstream-crds services ## operator at 1,000 ModelDeployments and 1,000 TrainingRuns: registry requests/s, CR -> children p50/p95, memory, idle and restart writes (~15 min; BENCH_ARGS=--help) -> docs/benchmarks.md
	$(PY) -m tests.bench.operator $(BENCH_ARGS)

bench-autoscaling: install binaries upstream-crds services ## ModelDeployment HPA on CPU and on requests/s under load: time to new replicas, back down, failed requests -> docs/benchmarks.md
	$(PY) -m tests.bench.autoscaling

bench-serving: install ## maestro serve vs mlflow models serve, MLServer and no-op ceilings (wrk; h2load for gRPC) -> docs/benchmarks.md
	UV=$(UV) PYTHON=$(PYTHON) PROJECT_PY=$(PY) tools/bench-serving-peers.sh
	$(PY) -m tests.bench.serving

bench-tracing: install $(BIN)/jaeger ## the cost of tracing per reconcile and per `maestro serve` request, off vs on (Jaeger) -> docs/benchmarks.md
	$(PY) -m tests.bench.tracing

bench-abtest: install ## ABTest sequential test vs fixed horizon: samples to decision, power, false positives (simulated) -> docs/benchmarks.md
	$(PY) -m tests.bench.abtest

bench-drift: install ## `maestro drift check` (cached reference statistics) vs Evidently on 1M rows x 50 columns: time, peak memory, same verdicts -> docs/benchmarks.md
	$(PY) -m tests.bench.drift

demo: install binaries upstream-crds services ## start the local platform, apply the examples, show them
	$(PY) -m maestro.localplatform.demo up

demo-traffic: install ## users of the demo's iris deployment: predictions, then their outcomes as /feedback (the ABTest's figures)
	$(PY) -m maestro.localplatform.demo_traffic

demo-drift: install ## the example DriftCheck on the demo's iris deployment: served traffic, then shifted traffic that drifts (and retrains)
	$(PY) -m maestro.localplatform.demo_drift

down: ## stop everything `make demo` started
	$(PY) -m maestro.localplatform.demo down

kind-up: ## (needs Docker) a kind cluster with the CRDs and the operator from the minikube overlay
	kind create cluster --name maestro
	kubectl kustomize manifests/overlays/minikube | kubectl apply --server-side -f -

kind-down: ## (needs Docker) delete the kind cluster
	kind delete cluster --name maestro

clean: cluster-down ## stop the cluster and delete build outputs (keeps the binary cache)
	rm -rf .maestro .venv

# The README's two commands: `make demo` (the main job on the embedded local stack) and
# `make test` (every check). Both install what they need on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The Kubernetes API of `make demo` and `make stack-up`: emulator (default) or real.
CLUSTER ?= emulator
export CLUSTER

.PHONY: install system-deps tools controlplane lint test demo stack-up stack-down bench clean

$(BIN)/dagster-uc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/dagster-uc

system-deps:
	./scripts/install-system-deps.sh

tools: install
	$(BIN)/python -m stack.tools
	$(BIN)/python -m stack.podman

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go module
# proxy, cached under .cache/controlplane (see docs/local-stack.md).
controlplane: install
	$(BIN)/python -m stack.controlplane.build

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The end-to-end tests that `make test` runs a second time on the real control plane.
E2E_REAL ?= tests/e2e/test_deploy.py tests/e2e/test_lifecycle.py tests/e2e/test_reliability.py \
	tests/e2e/test_rbac.py tests/e2e/test_sidecars_and_lookups.py tests/e2e/test_release_modes.py \
	tests/e2e/test_release_modes_lifecycle.py tests/e2e/test_migrate.py

# Every check: lint, the whole suite on the emulator, then the deploy, lifecycle, reliability,
# RBAC, release-mode and migrate end-to-end tests again on the real control plane.
test: system-deps install tools controlplane lint
	$(BIN)/pytest $(PYTEST_ARGS)
	DAGSTER_UC_E2E_CLUSTER=real $(BIN)/pytest $(E2E_REAL)

demo: system-deps install tools
	$(if $(filter real,$(CLUSTER)),$(BIN)/python -m stack.controlplane.build)
	$(BIN)/python -m stack.demo

stack-up: system-deps install tools
	$(BIN)/python -m stack.stackctl up --cluster $(CLUSTER)

stack-down:
	$(BIN)/python -m stack.stackctl down

bench: system-deps install tools
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .cache .stack build dist src/*.egg-info

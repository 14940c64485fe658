# The README's two commands: `make demo` (the main job on the embedded local stack) and
# `make test` (every check). Both install what they need on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install system-deps tools lint test demo stack-up stack-down bench clean

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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-deps install tools lint
	$(BIN)/pytest $(PYTEST_ARGS)

demo: system-deps install tools
	$(BIN)/python -m stack.demo

stack-up: system-deps install tools
	$(BIN)/python -m stack.stackctl up

stack-down:
	$(BIN)/python -m stack.stackctl down

bench: system-deps install tools
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .cache .stack build dist src/*.egg-info

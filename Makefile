# Development tasks. `make test` is what CI runs (.ci/run).
#
#   make venv          .venv with the package (editable) and its test tools
#   make sandbox       start the throwaway dockerd + registry (scripts/sandbox up)
#   make seed          push the demo images and reset the sandbox daemon to the demo's start
#   make demo          plan, apply, list images, plan again against the sandbox
#   make lint          ruff + mypy
#   make test          lint, then every test (unit + integration) against the sandbox
#   make unit          unit tests only, no sandbox needed
#   make bench         every benchmark in bench/ (plan, apply, pull, retention, manifest load, peers) against the sandbox
#   make sandbox-down  stop the sandbox (images and registry content are kept)
#   make clean         stop and delete the sandbox, remove .venv and caches

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SANDBOX := scripts/sandbox
DEMO_MANIFEST := manifests/demo.yaml

# Debian's docker client matches the sandbox daemon; a newer client elsewhere may not.
DOCKER := $(shell if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else echo docker; fi)

# Prefix for recipe lines that talk to the sandbox: exports DOCKER_HOST and friends.
WITH_SANDBOX = eval "$$($(SANDBOX) env)";

.PHONY: venv sandbox seed demo lint test unit bench sandbox-down clean

# Byte-compile the package each time: an editable install leaves that to the first import,
# which never writes it where PYTHONDONTWRITEBYTECODE is set, so every run would compile
# every module again (about 0.1 s of each command's start). Up-to-date files are skipped.
venv: $(STAMP)
	@$(BIN)/python -m compileall -q reconciler

$(STAMP): setup.cfg
	@# Debian ships venv's ensurepip apart from python3.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	touch $@

sandbox:
	$(SANDBOX) up

seed: sandbox
	$(SANDBOX) seed

demo: venv sandbox seed
	@$(WITH_SANDBOX) export REGISTRY="$$RECONCILE_SANDBOX_REGISTRY"; \
	echo "+ reconcile plan $(DEMO_MANIFEST)"; \
	$(BIN)/reconcile plan $(DEMO_MANIFEST); \
	echo "+ reconcile apply $(DEMO_MANIFEST)"; \
	$(BIN)/reconcile apply $(DEMO_MANIFEST); \
	echo "+ docker image ls"; \
	$(DOCKER) image ls; \
	echo "+ reconcile plan $(DEMO_MANIFEST)"; \
	$(BIN)/reconcile plan $(DEMO_MANIFEST)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: venv sandbox seed lint
	$(WITH_SANDBOX) RECONCILE_REQUIRE_SANDBOX=1 $(BIN)/python -m pytest -q

unit: venv
	$(BIN)/python -m pytest -q tests/unit

# Every benchmark, one after another, each with its defaults; .venv's python has the package importable.
BENCHES := plan_bench.py apply_bench.py pull_bench.py retention_bench.py build_inputs_bench.py manifest_load_bench.py peer_bench.py

bench: venv sandbox
	@$(WITH_SANDBOX) for bench in $(BENCHES); do \
		echo "+ $(BIN)/python bench/$$bench"; \
		$(BIN)/python bench/$$bench; \
		echo; \
	done

sandbox-down:
	$(SANDBOX) down

clean:
	$(SANDBOX) down --purge
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

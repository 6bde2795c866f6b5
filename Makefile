# tekton-mlops: every developer and CI task goes through this file.
# `make help` lists the targets.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real MLflow tracking server the tracking tests and benchmark run, in its own venv:
# mlflow's pins (pandas, graphql-core, ...) must not change the runtime's. 3.17.2: the
# index serves mlflow 3.18.0 without the mlflow-skinny 3.18.0 it requires.
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_VERSION := 3.17.2
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed-$(MLFLOW_VERSION)
TESTS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,trigger,kfp,test,dev]'
	@touch $@

dev: $(STAMP) ## Create the venv with the runtime, test and lint tools

$(MLFLOW_STAMP):
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet 'mlflow==$(MLFLOW_VERSION)'
	@touch $@

system-deps: ## Install the Debian packages tests and benchmarks use (as root)
	hack/system-deps.sh

test: $(STAMP) $(MLFLOW_STAMP) ## Run the tests (TESTS=pattern to select)
	@if [ "$$CI" = "true" ]; then hack/system-deps.sh; fi
	$(BIN)/pytest --durations=10 $(if $(TESTS),-k '$(TESTS)') $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy, yamllint, catalog lint, docs in sync
	$(BIN)/ruff check runtime tests hack benchmarks examples
	$(BIN)/ruff format --check runtime tests hack benchmarks examples
	$(BIN)/mypy
	$(BIN)/yamllint -s catalog
	$(BIN)/tekton-mlops catalog lint
	$(BIN)/tekton-mlops catalog docs --check

docs: $(STAMP) ## Regenerate the catalog READMEs from the YAML and schemas
	$(BIN)/tekton-mlops catalog docs

verify: docs ## Regenerate derived files and fail if anything changed
	git diff --exit-code -- catalog

fmt: $(STAMP) ## Format and fix what ruff can
	$(BIN)/ruff format runtime tests hack benchmarks examples
	$(BIN)/ruff check --fix runtime tests hack benchmarks examples

image: $(STAMP) ## Build the runtime image with podman (no pulls); prints its reference last
	hack/system-deps.sh --image
	hack/image.sh

image-kfp: $(STAMP) ## Build the runtime image's kfp variant (tag <version>-kfp) for `tekton-mlops kfp`
	hack/system-deps.sh --image
	VARIANT=kfp hack/image.sh

image-test: $(STAMP) ## Build the image, run every step in it as 65532 and the Pipeline with --runner podman
	hack/system-deps.sh --image
	$(BIN)/pytest tests/local/test_podman.py $(PYTEST_ARGS)

release: image-test ## Push the tested image, pin it into every Task, push bundles (REGISTRY=host/org)
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. make release REGISTRY=ghcr.io/tekton-mlops"; exit 2; }
	$(BIN)/tekton-mlops catalog release --registry $(REGISTRY)

mutation: $(STAMP) ## Mutation score of the modules that gate a release; fails under MIN_SCORE (90) %
	MIN_SCORE=$(or $(MIN_SCORE),90) hack/mutation.sh

bench: $(STAMP) $(MLFLOW_STAMP) ## Run the ratio benchmarks into benchmarks/README.md (BENCH="fetch sign" for some)
	hack/system-deps.sh --bench
	$(BIN)/python benchmarks/run.py $(BENCH)

demo: $(STAMP) ## Run train-and-deploy locally: fetch, train, gate, sign, push, canary, SLOs, promote
	hack/demo.sh

demo-tune: $(STAMP) $(MLFLOW_STAMP) ## Run tune-and-train locally: prepare, tune (2 workers), train, report, sign; tracked in MLflow
	hack/demo-tune.sh

services: $(STAMP) ## Start the local S3 server (moto) by hand on 127.0.0.1:5000
	hack/services.sh

clean: ## Remove the venv and caches
	rm -rf $(VENV) $(MLFLOW_VENV) .pytest_cache .mypy_cache .ruff_cache .demo .demo-tune .bench .image .tekton-mlops .mutation

.PHONY: help dev system-deps test lint docs verify fmt image image-kfp image-test release mutation bench demo demo-tune services clean

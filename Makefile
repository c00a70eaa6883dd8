# Two commands on a fresh machine with Python 3.11+ (see README): `make run` and `make test`.
# Both bootstrap a pinned uv in .tools/ and sync .venv/ from uv.lock.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: run test test-fast lint bench system-packages clean help

help:
	@echo "make run    - start everything (embedded NATS, gateway, processor, logsink, web UI)"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make bench  - run the benchmarks (docs/benchmarks.md)"

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

run: $(VENV)/.synced
	$(VENV)/bin/jobline up

# Debian packages the tests need: chromium for the browser tests (Playwright cannot download a
# browser here), redis-server for the benchmark's Celery peer (its smoke run is a test), openssl
# to make the TLS test's certificate, and postgresql for the history tests on PostgreSQL (each run
# starts its own throwaway server with initdb + pg_ctl). Each is `package:file it provides`.
DEBIAN_PACKAGES := chromium:/usr/bin/chromium redis-server:/usr/bin/redis-server openssl:/usr/bin/openssl \
	postgresql:/usr/lib/postgresql/*/bin/initdb
system-packages:
	@missing=""; \
	for entry in $(DEBIAN_PACKAGES); do \
	  pkg=$${entry%%:*}; probe=$${entry#*:}; \
	  ls $$probe >/dev/null 2>&1 || command -v $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

# Lint and import order (ruff), types (mypy: strict on the contract and the runtime, checked
# elsewhere; the package is `jobline` but its folder is services/, so mypy sees it through a link).
lint: $(VENV)/.synced
	$(VENV)/bin/ruff check services tests bench examples
	@mkdir -p .mypy && ln -sfn ../services .mypy/jobline
	$(VENV)/bin/mypy -p jobline

test: $(VENV)/.synced system-packages lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.synced
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(VENV)/.synced system-packages bench/bullmq/node_modules
	$(VENV)/bin/python -m bench.run
	$(VENV)/bin/python -m bench.streams
	$(VENV)/bin/python -m bench.flood
	$(VENV)/bin/python -m bench.http_ceiling
	$(VENV)/bin/python -m bench.clients
	$(VENV)/bin/python -m bench.queue_controls
	$(VENV)/bin/python -m bench.batches
	$(VENV)/bin/python -m bench.nats_client

# The BullMQ peer of bench.batches (Node and npm are on these machines), in its own folder only.
bench/bullmq/node_modules: bench/bullmq/package.json bench/bullmq/package-lock.json
	cd bench/bullmq && npm ci --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(TOOLS) $(VENV) .jobline .pytest_cache

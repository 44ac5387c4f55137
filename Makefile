# Two commands set everything up: `make demo` and `make test`.
# Both bootstrap .venv idempotently: it is rebuilt only when the project
# metadata or the package folder structure changes (strict editable installs
# need a reinstall to see new files).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PKG_DIRS := $(shell find proto/sidra server drivers client emulator -type d -not -name __pycache__ 2>/dev/null)

.PHONY: demo test check lint typecheck proto bench clean

$(STAMP): pyproject.toml setup.py $(PKG_DIRS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sidra demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy -p sidra.hil -p sidra.drivers -p sidra.emulator -p sidra.server -p sidra.client

check: lint typecheck test

# Regenerate the committed gRPC/protobuf code with the pinned grpcio-tools.
proto: $(STAMP)
	$(BIN)/python proto/generate.py

bench: $(STAMP)
	$(BIN)/sidra bench emulator

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

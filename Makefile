# Two commands set everything up: `make demo` and `make test`.
# Both bootstrap .venv idempotently. It is reinstalled only when the project
# metadata or the package folder structure changes: strict editable installs
# must be redone to see new files, and a new file changes its folder's mtime.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PKG_DIRS := $(shell find proto/sidra server drivers client emulator -type d -not -name __pycache__ 2>/dev/null)
INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test check lint contracts typecheck pytest proto clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime dependencies plus the training extra (data sets, plots): what `make demo` needs.
$(VENV)/.runtime: $(BIN)/python pyproject.toml setup.py $(PKG_DIRS)
	$(INSTALL) -e '.[training]' --config-settings editable_mode=strict
	touch $@

# Runtime plus test, lint and code-generation tools.
$(VENV)/.dev: $(BIN)/python pyproject.toml setup.py $(PKG_DIRS)
	$(INSTALL) -e '.[dev]' --config-settings editable_mode=strict
	touch $@ $(VENV)/.runtime

# The package's bytecode, compiled ahead of the processes that import it. Where
# PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines) Python reads
# bytecode but never writes it, so every `sidra` process, test server and virtual board
# would compile the package's sources again: 0.4-0.8 s a process, most of a command's
# start. compileall writes only what is missing or stale.
BYTECODE := $(BIN)/python -c "import compileall, importlib.util as u; \
	[compileall.compile_dir(p, quiet=1, workers=0) for p in u.find_spec('sidra').submodule_search_locations]"

demo: $(VENV)/.runtime
	$(BYTECODE)
	$(BIN)/sidra demo

test: lint contracts typecheck pytest

# The suite on one worker process per CPU, at most four (pytest-xdist): every test
# binds its own port, pty, BAR file and temporary folder. PYTEST_WORKERS=0 runs it
# in this process. A real board's conformance run (`pytest -m conformance
# --board-url ...`) stays serial: one board serves one test at a time.
PYTEST_WORKERS ?= auto

pytest: $(VENV)/.dev
	$(BYTECODE)
	$(BIN)/python -m pytest -q --durations=15 -n $(PYTEST_WORKERS) --maxprocesses 4

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# Package contracts (pyproject.toml [tool.importlinter]): one dependency direction.
contracts: $(VENV)/.dev
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev
	$(BIN)/mypy -p sidra.hil -p sidra.drivers -p sidra.emulator -p sidra.server -p sidra.client -p sidra.training -p sidra.characterize -p sidra.cli

check: test
	$(BIN)/ruff format --check .

# Regenerate the committed gRPC/protobuf code with the pinned grpcio-tools.
proto: $(VENV)/.dev
	$(BIN)/python proto/generate.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

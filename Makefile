# One environment in .venv at the repo root; every target creates it if needed.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export RETRAINING_HOME ?= $(CURDIR)/var
export DAGSTER_HOME ?= $(CURDIR)/var/dagster
# LightGBM's OpenMP threads spin: keep every process to an explicit, small thread count.
export OMP_NUM_THREADS ?= 1

.PHONY: install lock demo test test-fast test-stack lint format dev mlflow-ui clean-state

# constraints.txt pins antlr4-python3-runtime 4.13.2 against DVC's 4.9 (breaks Dagster's string
# selections). Bytecode is compiled up front: where PYTHONDONTWRITEBYTECODE is set, every process
# (Dagster runs, daemon, tests) would otherwise compile its imports again (cold cycle 16.9 -> 8.9 s).
# requirements.lock pins every package with its hashes: installs are reproducible, and a changed
# or substituted file fails the install. The project itself goes in editable, without dependencies.
$(BIN)/.installed: pyproject.toml constraints.txt requirements.lock
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python --require-hashes -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib retraining_assets > /dev/null || true
	touch $@

install: $(BIN)/.installed  ## create .venv with the project and its dev tools

# Re-resolve the lock after changing pyproject.toml or constraints.txt; keeps existing pins unless
# UPGRADE=1 (then every package moves to the newest version the specifiers allow). Commit the result.
lock:
	test -x $(BIN)/uv || { test -x $(BIN)/python || python3 -m venv $(VENV); $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"; }
	$(BIN)/uv pip compile -q pyproject.toml --extra dev -c constraints.txt --generate-hashes \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		$(if $(UPGRADE),--upgrade,) -o requirements.lock

demo: install  ## prepare the flights data (dvc repro), train a first model, retrain on a later week
	$(BIN)/retraining demo

# The suite runs on TEST_WORKERS processes (pytest-xdist), each training with one thread
# (OMP_NUM_THREADS above). Three on CI's two cores: many tests wait on daemons and subprocesses,
# and two workers kept the cores busy ~65% of the time (same machine, one after another:
# -n 2 955 s, -n 3 828 and 812 s). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3
test: install  ## the whole test suite (no service needed: the stack tests are left to test-stack)
	$(BIN)/pytest -m "not stack" -n $(TEST_WORKERS)

test-fast: install  ## skip the tests that run the whole chain
	$(BIN)/pytest -m "not slow and not e2e and not stack" -n $(TEST_WORKERS)

# Postgres + S3 on loopback (scripts/stack), the stack tests with its environment, and the stack
# brought down again whether the tests passed or not. In one process (no -n): some of these tests
# stop and restart the Postgres and S3 servers every other test uses.
test-stack: install  ## the stack tests against Postgres + an S3 endpoint started on 127.0.0.1
	@export RETRAINING_PYTHON=$(abspath $(BIN))/python; \
	scripts/stack up || { scripts/stack down; exit 1; }; \
	eval "$$(scripts/stack env)"; \
	RETRAINING_STACK_REQUIRED=1 $(BIN)/pytest -m stack; status=$$?; \
	scripts/stack down; exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

dev: install  ## Dagster UI and daemon on http://127.0.0.1:3000
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

mlflow-ui: install  ## MLflow UI on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(RETRAINING_HOME)/mlflow/mlflow.db --host 127.0.0.1 --port 5000

clean-state:  ## forget every run, model and artifact (keeps the data batches)
	rm -rf var/store var/production var/mlflow var/dvc-remote var/dagster/storage var/dagster/history var/dagster/schedules var/dagster/logs

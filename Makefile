# Two commands for a newcomer: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test browser soak cluster-demo lint mlflow-ui prefect-ui bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11 or 3.12)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: a looser requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	# Prefect's migrations, run once here instead of on every new SHOAL_HOME (infra/prefect_schema.py)
	$(BIN)/python -m infra.prefect_schema
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shoal demo

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not soak"

# Debian's chromium for the real-browser tests (tests/chromium.py), installed once with apt-get as
# root or with sudo that asks no password. Where it can't be, those tests skip, and fail under CI.
browser:
	@command -v chromium >/dev/null || { \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
		mkdir -p .shoal; \
		if command -v apt-get >/dev/null; then { $$sudo apt-get update \
		&& $$sudo apt-get install -y --no-install-recommends chromium; } >.shoal/apt.log 2>&1; \
		else echo "no apt-get on PATH" >.shoal/apt.log; fi; \
		command -v chromium >/dev/null \
		|| echo "chromium could not be installed (.shoal/apt.log): the browser tests skip"; }

# The long end-to-end guarantees of docs/hardening.md and docs/operations.md, each several full
# flow runs: SIGKILL and resume, five-run leak check, two-window retrain, real servers, sweep.
soak: $(STAMP)
	$(BIN)/pytest -m soak

# A Ray head + 2 nodes, Dask, Prefect, MLflow and S3 (moto) on 127.0.0.1; docs/operations.md
cluster-demo: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m tests.infra.local_cluster

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Speed and memory against the reference libraries; figures and more options in benchmarks/README.md
bench: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/bench_phdbscan.py --sizes 10000 100000 --dims 32 --skip-slow-refs
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/bench_pretrain.py --sequences 4096
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/bench_ingest.py --workdir .shoal/bench_ingest

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.shoal/mlflow.db --host 127.0.0.1 --port 5000

# The demo's flow and task runs: Prefect's ephemeral API kept them in the SQLite database under
# PREFECT_HOME (.shoal/prefect, infra/settings.py); this serves the UI on that same database.
prefect-ui: $(STAMP)
	PREFECT_HOME=$(CURDIR)/.shoal/prefect PREFECT_SERVER_ANALYTICS_ENABLED=false \
		$(BIN)/prefect server start --host 127.0.0.1 --port 4200

clean:
	rm -rf .shoal

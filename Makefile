# Two commands do all set-up on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=
# test processes side by side (pytest-xdist): auto = one per CPU core; TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= auto

.PHONY: install train test test-fast test-gpu lint bench clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED) ## create .venv and install mlplab with its dependencies

train: $(INSTALLED) ## get MNIST and train the default experiment (extra overrides: make train ARGS="lr=1e-2")
	$(PY) train.py experiment=mnist_quick $(ARGS)

test: $(INSTALLED) ## the whole test suite, slow end-to-end runs on the real data included (what CI runs)
	$(PY) -m pytest -n $(TEST_WORKERS) $(ARGS)

test-fast: $(INSTALLED) ## the quick tests only
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow" $(ARGS)

test-gpu: $(INSTALLED) ## every GPU path on the GPUs present (skipped, with the reason, without one); writes outputs/gpu_check/report.md
	$(PY) -m pytest -p no:xdist -p no:cacheprovider -m gpu tests/gpu -rs -v $(ARGS)

lint: $(INSTALLED) ## the linter and the formatter's check (ruff, configured in pyproject.toml); `ruff format` fixes the format
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(INSTALLED) ## time mlplab against plain PyTorch and the usual DataLoader path (see BENCHMARKS.md)
	$(PY) -m mlplab.bench $(ARGS)

clean: ## remove caches (keeps data/, outputs/ and .venv)
	rm -rf .pytest_cache src/*.egg-info

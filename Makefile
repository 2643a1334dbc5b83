# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This workplace keeps a CPU wheel of torch on disk; anywhere else any torch >= 2.2 works
# (override with e.g. `make test TORCH_SPEC='torch>=2.2'`).
TORCH_SPEC ?= $(if $(wildcard /opt/wheels/torch-2.13.0*),torch==2.13.0,torch>=2.2)
# The MARL peer (pbkit[marl], benchmarks/torchrl_mappo.py): torchrl's compiled parts are built for
# one torch, so it is installed only beside the torch it was checked with, without dependencies
# (pip must never replace torch); elsewhere its test is skipped (set MARL_SPEC to opt in).
MARL_SPEC ?= $(if $(filter torch==2.13.0,$(TORCH_SPEC)),torchrl==0.14.1 tensordict==0.14.3 hoptorch pyvers)

.PHONY: setup demo test lint bench clean-demo libraries figures

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[all,test,bench]"
	$(if $(MARL_SPEC),$(BIN)/pip install -q --no-deps $(MARL_SPEC))
	$(if $(MARL_SPEC),$(BIN)/pip install -q cloudpickle orjson importlib-metadata packaging)
	touch $@

demo: setup
	$(BIN)/python examples/demo.py

test: setup lint
	$(BIN)/python -m pytest

# Lint, format check and the import contracts (pyproject.toml); part of `make test`, so of CI.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python benchmarks/run_all.py

# The shipped PB libraries (pbkit/library/shipped/*.json) from their plan specs; deterministic.
libraries: setup
	$(BIN)/python -m pbkit.library.shipped.build

# The figure set (docs/experiments.md): sweeps on Ray, >= 10 seeds per point; resumable.
FIGURES_OUT ?= docs/figures/paper
FIGURES_ARGS ?= --workers 2 $(if $(wildcard docs/figures/zoo-learn-results.json),--learn-results docs/figures/zoo-learn-results.json)
figures: setup
	nice -n 10 $(BIN)/pbkit figures --out $(FIGURES_OUT) $(FIGURES_ARGS)

clean-demo:
	rm -rf .pbkit-demo

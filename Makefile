# Every target does its own set-up: a fresh machine needs nothing but Python >= 3.10 and make.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX_URL ?=
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test test-all test-compat docs lock bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	# torch first and pinned, so no other build (and no CUDA wheels) is ever pulled in on a CPU machine.
	# Without a GPU, TORCH_CPU_INDEX_URL (PyTorch's CPU-only wheel index, from its install page) picks the CPU build
	# where the default index would serve the CUDA one; machines with a local CPU wheel need nothing.
	$(PIP) install "torch==$(TORCH_VERSION)" $(if $(and $(TORCH_CPU_INDEX_URL),$(if $(HAS_GPU),,1)),--index-url $(TORCH_CPU_INDEX_URL))
	$(PIP) install -c constraints.txt -e ".[test]"
	# Transformers' own common model tests come from its sdist (not committed here); failure only skips them.
	-$(PY) tests/hf_common/fetch_common_tests.py
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m lrpe_hf.demo --output_dir outputs/demo-clm

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "" tests

# The version matrix: throwaway environments for the oldest declared Transformers and the newest releases on the
# index, each running every test that touches Transformers (tests/compat/matrix.py; report in .cache/compat/).
test-compat: $(STAMP)
	$(PY) tests/compat/matrix.py

# The documentation site (mkdocs.yml, docs/): strict, so a broken link, a broken reference or a page out of step with
# the code (docs/hooks.py) fails; offline, into site/. The `docs` extra is installed on first use, pinned.
$(DOCS_STAMP): $(STAMP)
	$(PIP) install -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# Rewrite constraints.txt from the current environment (after a green `make test` and `make test-compat`).
lock: $(STAMP)
	$(PY) tests/compat/lock.py

clean:
	rm -rf $(VENV) outputs .cache/compat site

# Every target does its own set-up: a fresh machine needs nothing but Python >= 3.10 and make.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test test-all bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	# torch first and pinned, so no other build (and no CUDA wheels) is ever pulled in on a CPU machine.
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -c constraints.txt -e ".[test]"
	# Transformers' own common model tests come from its sdist (not committed here); failure only skips them.
	-$(PY) tests/hf_common/fetch_common_tests.py
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/train_clm.py --output_dir outputs/demo-clm --overwrite_output_dir

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "" tests

clean:
	rm -rf $(VENV) outputs

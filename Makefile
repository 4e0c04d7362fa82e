# The README's two commands: `make install` then `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install demo test test-fast lint format bench clean

install:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build of PyTorch first (from this machine's disk); a plain `torch` would pull CUDA.
	$(PIP) install --quiet torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install --quiet -c constraints.txt -e '.[dev]'

demo:
	bash examples/demo.sh

test:
	$(PY) -m pytest -q -ra

test-fast:
	$(PY) -m pytest -q -m "not integration"

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench:
	$(PY) bench/accuracy.py
	$(PY) bench/speed.py
	$(PY) bench/int8_variants.py
	$(PY) bench/cold_start.py
	$(PY) bench/finetune_int8.py
	$(PY) bench/generation.py
	$(PY) bench/first_model.py
	$(PY) bench/fuzz.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

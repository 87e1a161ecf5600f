# The two set-up commands of the README are `make serve` and `make test`.
# Both create their own virtual environment in .venv and install what they
# need, so a machine with only Python 3.11+ and make is enough.

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= ./cleanfeed-data
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test lint bench vectors clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[server,postgres,test]'
	touch $@

serve: $(VENV)/.installed
	$(VENV)/bin/cleanfeed serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	bash scripts/test

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(VENV)/bin/python -m bench

vectors: $(VENV)/.installed
	$(VENV)/bin/python scripts/gen_vectors.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache

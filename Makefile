# Two commands on a fresh machine: `make rehearse` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: rehearse test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

rehearse: $(STAMP)
	$(BIN)/lunar-gs rehearse seeds/nominal.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=25

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) reports .pytest_cache

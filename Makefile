# Two-command quick start: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup compile demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Compiled bytecode for our own package: an editable install leaves none, and with PYTHONDONTWRITEBYTECODE set
# (as on the benchmark machine) every command would compile ~70 ms of our sources again at start.
compile: $(STAMP)
	$(PY) -m compileall -q canteen_ops

demo: compile
	$(PY) -m canteen_ops.demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: compile
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
	find canteen_ops tests bench -name __pycache__ -prune -exec rm -rf {} +

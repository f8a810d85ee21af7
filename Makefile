# Two entry points: `make demo` and `make test`. Both (re)create .venv from a plain Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# pytest-xdist workers: one per core of the 2-core CI machine (TEST_WORKERS=0 runs in-process)
TEST_WORKERS ?= 2

.PHONY: venv demo test test-slow bench lint figures docs clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m models.compare.demo --out results/demo

test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=20 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-slow: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=20 -m slow $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no slow tests: failing"; exit 1; fi; exit $$rc

bench: venv
	$(PY) -m models.bench.autoguide --out results/bench --resume

figures: venv  # the docs' tables and figures from the result files in docs/bench/ (docs/generate.py)
	$(PY) docs/generate.py

docs: figures  # strict: any warning, broken cross-reference or broken internal link fails the build
	$(PY) -m sphinx -b html -E -W --keep-going -n -q docs docs/_build/html
	@echo "Open docs/_build/html/index.html"

lint: venv
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache

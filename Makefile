# Every target bootstraps .venv itself; `make setup` is idempotent and fast when nothing changed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
DATA ?=
OUT ?= out

.PHONY: setup demo test bench lint lock clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (ehrpredict needs Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: setup
	@bash scripts/demo.sh "$(DATA)" "$(OUT)"

# The doctests in src/ehrpredict run with the tests (--doctest-modules in pyproject.toml).
# pytest exit code 5 means no test ran: that is a failure, not a pass.
test: setup
	@$(BIN)/python -m pytest -q -n 2 tests src/ehrpredict; status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: no tests were collected"; exit 1; fi; exit $$status

bench: setup
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_tasks.py
	$(BIN)/python bench/bench_synth.py
	$(BIN)/python bench/bench_featurize.py
	$(BIN)/python bench/bench_serialize.py
	$(BIN)/python bench/bench_embed.py
	$(BIN)/python bench/bench_benchmark.py
	$(BIN)/python bench/bench_predict.py
	$(BIN)/python bench/bench_serve.py --workers 2

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

lock:
	rm -rf /tmp/ehrpredict-lock && $(PYTHON) -m venv /tmp/ehrpredict-lock
	/tmp/ehrpredict-lock/bin/pip install --quiet -e '.[dev,text,fhir,serve]'
	( echo "# Full pinned dependency tree for make setup (core + dev). Regenerate with: make lock"; \
	  /tmp/ehrpredict-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' ) > requirements.lock

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache

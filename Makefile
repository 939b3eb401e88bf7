# Every target sets itself up: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck check-migrations bench bench-quick clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/opsflow db upgrade
	$(BIN)/opsflow seed-demo
	@echo ""
	@echo "Get a token for a demo user (password for the login page: opsflow-demo; see docs/authentication.md):"
	@echo "  TOKEN=\$$($(BIN)/opsflow token --user dc.jones)"
	@echo "  curl -H \"Authorization: Bearer \$$TOKEN\" http://127.0.0.1:8000/api/v1/tasks"
	@echo ""
	$(BIN)/opsflow serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check engine api auth tests bench

typecheck: install
	$(BIN)/mypy

check-migrations: install
	$(BIN)/opsflow db check

test: install lint typecheck check-migrations
	$(BIN)/pytest

# The benchmarks make (and drop) schemas of their own in this database; see docs/performance.md.
OPSFLOW_BENCH_DATABASE_URL ?= $(or $(OPSFLOW_TEST_DATABASE_URL),postgresql+psycopg://postgres@127.0.0.1:5432/test)

bench: install
	OPSFLOW_BENCH_DATABASE_URL='$(OPSFLOW_BENCH_DATABASE_URL)' $(BIN)/python -m bench

bench-quick: install
	OPSFLOW_BENCH_DATABASE_URL='$(OPSFLOW_BENCH_DATABASE_URL)' $(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache

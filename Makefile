# The front door: `make run` and `make test` are all a newcomer needs.
# The first interpreter that really runs and is 3.11 or 3.12 (durable_rules does not import on 3.13+;
# version-manager shims may exist for versions that are not installed).
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export PRM_DATABASE_URL ?= sqlite:///var/prm.sqlite3

.PHONY: install run test lint format bench clean

$(BIN)/prm: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is needed (durable_rules does not run on 3.13+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/prm

# The production server (gunicorn, one worker per core), on SQLite unless PRM_DATABASE_URL says otherwise.
run: install
	$(BIN)/prm db upgrade
	$(BIN)/prm demo seed
	@echo
	@echo "  API docs (Swagger UI): http://$(HOST):$(PORT)/docs/"
	@echo "  OpenAPI document:      http://$(HOST):$(PORT)/docs/openapi.json"
	@echo "  Demo API keys:         var/demo-keys.txt (one per demo user)"
	@echo "  Territory pages:       http://$(HOST):$(PORT)/sign-in (paste the admin's key)"
	@echo
	PRM_LOG_FORMAT=text $(BIN)/prm serve --bind $(HOST):$(PORT)

# Two workers: one per core of the small machines we run on (each has its own databases).
test: install
	$(BIN)/pytest -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The assignment engine, then batch reassignment on PostgreSQL, what-if in process, then the REST service from
# outside (production server on PostgreSQL).
bench: install
	$(BIN)/python -m bench.assignment
	$(BIN)/python -m bench.reassignment
	$(BIN)/python -m bench.whatif
	$(BIN)/python -m bench.rest
	$(BIN)/python -m bench.transfer

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis

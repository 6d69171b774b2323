# Every target sets itself up: .venv is (re)built when missing or when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo serve ui sandbox bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check billpay tasks flows deployments tests
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/billpay demo

serve: $(STAMP)
	$(BIN)/billpay serve

# The UI of the Prefect server the demo used (its history is kept under .billpay/prefect).
# Point other shells at it with: export PREFECT_API_URL=http://127.0.0.1:4200/api
ui: $(STAMP)
	$(BIN)/billpay ui --port 4200

sandbox: $(STAMP)
	$(BIN)/billpay sandbox --port 8765

bench: $(STAMP)
	$(BIN)/billpay bench

lint: $(STAMP)
	$(BIN)/ruff check billpay tasks flows deployments tests
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .billpay

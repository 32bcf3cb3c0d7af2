# Two commands do all the set-up: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

$(BIN)/roost: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/roost

.PHONY: install demo test bench clean
install: $(BIN)/roost

demo: install
	$(BIN)/roost demo

test: install
	$(BIN)/ruff check roost tests bench
	$(BIN)/ruff format --check roost tests bench
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) workspace .pytest_cache

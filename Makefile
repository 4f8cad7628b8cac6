# The two set-up commands: `make demo` and `make test`. Both work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format data install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch/torchvision pinned to the releases that lie on this project's machines; any torch >= 2.10 works.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/pip install -q "torch>=2.10" "torchvision>=0.25"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian ships the real Fashion-MNIST files; install them when we are root with apt (CI, fresh machines).
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist' or set RESNETLAB_DATA"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) data lint
	$(BIN)/python -m pytest -q

demo: $(STAMP) data
	$(BIN)/resnetlab degradation --out runs/degradation

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# The two quick-start commands. Each creates .venv and installs the project on first use.
#   make quickstart   train MAESTRO on the embedded tiny model (CPU, a few minutes)
#   make test         lint (ruff) and run the offline test suite
#   make docker-check build the Docker image offline and run it (root, buildah; minutes; docs/docker.md)
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: quickstart test install clean docker-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet "$(TORCH)"
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/python -m maestro_lit fit --config configs/quickstart.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest tests -n auto --maxprocesses 4 --dist worksteal

docker-check:
	bash docker/check.sh

clean:
	rm -rf $(VENV)

# homevision: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA := ../shared/data/home-listings-example.csv
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install lock data run validate train predict mlflow-ui test coverage lint format bench-tools benchmark sample-data services services-stop pipeline clean lowest-bounds

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# The exact versions CI tested (uv.lock), installed by uv; pip only brings uv itself.
# Installed as bytecode (--compile-bytecode, and the package itself): where the environment
# sets PYTHONDONTWRITEBYTECODE (the machines this project is built and tested on do), every
# process would compile each module it imports from source: 7 s of a small `predict`'s 12 s.
$(STAMP): pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv>=0.9"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --locked --extra dev --compile-bytecode
	$(BIN)/python -m compileall -q homevision >/dev/null
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install homevision with its dev tools, as locked in uv.lock

lock: ## Re-resolve uv.lock after changing dependencies in pyproject.toml (then commit both)
	$(BIN)/uv lock

data: ## Link the real sample from ../shared/data into data/raw when it is there
	@mkdir -p data/raw data/interim data/processed
	@if [ -f $(SHARED_DATA) ] && [ ! -e data/raw/home-listings-example.csv ]; then \
		ln -s "$$(cd $$(dirname $(SHARED_DATA)) && pwd)/home-listings-example.csv" data/raw/home-listings-example.csv; \
		echo "linked $(SHARED_DATA) into data/raw/"; fi

run: install data ## Run the main job on the default data: train (select, tune, register), then value
	$(BIN)/homevision train
	$(BIN)/homevision predict

train: install data ## Select, tune, evaluate and register a model on the default data
	$(BIN)/homevision train

predict: install data ## Value the unsold listings of the default data with the champion
	$(BIN)/homevision predict

services: install ## Start PostgreSQL + the MLflow server on 127.0.0.1 (data in .services/); prints the exports
	@scripts/services.sh start

services-stop: ## Stop the MLflow server and PostgreSQL (their data stays in .services/)
	@scripts/services.sh stop

pipeline: install data ## Run the DVC pipeline (ingest -> validate -> train -> predict -> monitor); only what changed reruns
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro -f -s ingest
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/dvc metrics show

mlflow-ui: install ## Browse runs, models and artifacts (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

validate: install data ## Validate the default data and print the data report
	$(BIN)/homevision validate

sample-data: install ## Write the synthetic sample to data/raw/synthetic-listings.csv
	$(BIN)/homevision sample-data --rows 2000 --seed 0

TEST_WORKERS ?= 2
test: install data ## Run the whole test suite (TEST_WORKERS=2 processes; prints the 25 slowest tests)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

lowest-bounds: install data ## Run the unit, model and data tests with every dependency at its declared lower bound (.venv-lowest)
	scripts/lowest-bounds.sh

coverage: install data ## Run the whole test suite with line coverage of the package (term + coverage.xml)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 \
		--cov=homevision --cov-report=term --cov-report=xml

lint: install ## Ruff lint and format check; actionlint on the GitHub workflows
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint .github/workflows/*.yml

format: install ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: docs docs-serve screenshots
docs: install data ## Build the docs site into site/ (--strict: a broken link or any warning fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install data ## Serve the docs with live reload on http://127.0.0.1:8001
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8001

screenshots: install ## Retake the app's screenshots in docs/ with the browser test (Debian chromium)
	@command -v chromium >/dev/null || { echo "needs Debian's chromium (apt-get install chromium)"; exit 1; }
	HOMEVISION_SCREENSHOTS="$(CURDIR)/docs/assets/screenshots" \
		$(BIN)/python -m pytest tests/integration/test_app.py -k real_browser -q
	$(BIN)/python scripts/shrink_png.py docs/assets/screenshots/*.png

bench-tools: ## Install wrk (Debian), the HTTP load generator benchmarks/serving.py prefers
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get install -y -q wrk; \
		else sudo apt-get install -y -q wrk; fi; }

benchmark: install data ## Print the benchmark figures (benchmarks/)
	$(BIN)/python benchmarks/synthetic_speed.py
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/intervals.py

clean: ## Remove caches and generated artifacts (keeps .venv and data/raw)
	rm -rf .pytest_cache .ruff_cache mlruns mlflow.db optuna.db reports data/interim/*.csv data/processed/*.csv

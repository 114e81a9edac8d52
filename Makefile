# OMT patient assistant. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
RASA    := $(VENV)/bin/rasa
MODEL   := models/omt.tar.gz
SPACY   := build/spacy_omt
GEN_NLU := data/generated_synonyms.yml
QUESTIONS ?= ../shared/eval/dev_questions.yml
MIN_ACCURACY ?= 0.95

export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONWARNINGS := ignore
export RASA_PORT ?= 5005
export ACTIONS_PORT ?= 5055
export TRACKER_DB ?= .data/tracker.db

TRAIN_INPUTS := $(VENV)/.installed config.yml domain.yml data/nlu.yml data/rules.yml data/stories.yml \
                knowledge/omt.yml omt/nlp_build.py omt/policy.py

.PHONY: help setup lock train build-nlp run shell test unit stories validate eval cv lint log-summary clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create the venv (Python from .python-version) and install pinned dependencies
$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml .python-version scripts/setup_venv.sh
	scripts/setup_venv.sh
	@touch $@

lock: $(VENV)/.installed ## Re-pin requirements.txt from requirements.in + constraints.txt
	$(PY) -m pip install -q -r requirements.in -c constraints.txt
	$(PY) -m pip freeze --exclude-editable > requirements.txt

build-nlp: $(SPACY)/meta.json ## Build our spaCy pipeline and NLU synonyms from knowledge/omt.yml
$(SPACY)/meta.json $(GEN_NLU) &: $(VENV)/.installed knowledge/omt.yml omt/nlp_build.py omt/knowledge.py
	$(PY) -m omt.nlp_build --out $(SPACY) --nlu $(GEN_NLU)

train: $(MODEL) ## Build the spaCy pipeline, then `rasa train` (skipped when no input changed)
$(MODEL): $(TRAIN_INPUTS) $(SPACY)/meta.json
	$(RASA) train --config config.yml --domain domain.yml --data data --out models --fixed-model-name omt

run: $(MODEL) ## Chat: action server (5055) + Rasa REST (5005), SQLite tracker in .data/; Ctrl-C stops all
	MODEL=$(MODEL) scripts/run_stack.sh

shell: $(MODEL) ## Terminal conversation against the running action server (start `make run` first)
	ACTION_ENDPOINT_URL=http://127.0.0.1:$(ACTIONS_PORT)/webhook $(RASA) shell --model $(MODEL) --endpoints endpoints.yml

validate: $(GEN_NLU) ## rasa data validate
	$(RASA) data validate --config config.yml --domain domain.yml --data data --fail-on-warnings

unit: $(VENV)/.installed ## Unit tests only (no running stack)
	$(PY) -m pytest -m "not stack" -q

stories: $(MODEL) ## Test stories (happy and unhappy paths)
	$(RASA) test core --model $(MODEL) --stories tests/ --fail-on-prediction-errors --out results/stories

test: lint validate $(MODEL) ## Everything CI runs: lint, data validation, unit + stack tests, test stories, dev-set eval
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory stories

eval: $(MODEL) ## Accuracy on a question file (QUESTIONS=path MIN_ACCURACY=x) against a stack it starts
	$(PY) -m omt.evaluate --questions $(QUESTIONS) --min-accuracy $(MIN_ACCURACY) --start-stack

cv: $(GEN_NLU) ## NLU cross-validation (5 folds); Rasa's reports go to results/cv
	$(RASA) test nlu --config config.yml --nlu data --cross-validation --folds 5 --out results/cv

lint: $(VENV)/.installed ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

log-summary: ## Summarise the provenance log (answers per id; not-covered/fallback/emergency rates)
	$(PY) -m omt.log_summary $${LOG:-logs/replies.jsonl}

clean: ## Remove built models, pipelines and results (keeps the venv)
	rm -rf build models results .rasa $(GEN_NLU)

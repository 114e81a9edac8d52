# OMT patient assistant. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
# Rasa's CLI after our version check and patches to Rasa (omt/rasa/run.py, omt/rasa/patches.py).
RASA    := $(PY) -m omt.rasa.run
MODEL   := models/omt.tar.gz
SPACY   := build/spacy_omt
GEN_NLU := data/generated_synonyms.yml
VOCAB   := build/vocabulary.json
QUESTIONS ?= tests/fixtures/questions.yml
MIN_ACCURACY ?= 0.95
EVAL_DIR ?= ../shared/eval
# `make thresholds` / `make bench-nlu`: the precision target of the threshold rule, and the CV folds.
MIN_PRECISION ?= 0.9
FOLDS ?= 5

export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONWARNINGS := ignore
export RASA_PORT ?= 5005
export ACTIONS_PORT ?= 5055
export TRACKER_DB ?= .data/tracker.db
# endpoints.yml reads both (no defaults there): empty = SQLite at TRACKER_DB, locks in memory.
export TRACKER_DB_URL ?=
export LOCK_STORE_URL ?=

TRAIN_INPUTS := $(VENV)/.installed config.yml domain.yml $(wildcard data/nlu*.yml) data/rules.yml data/stories.yml \
                knowledge/omt.yml omt/ops/nlp_build.py omt/rasa/policy.py omt/rasa/nlu_limit.py omt/rasa/nlu_spelling.py

.PHONY: bench-nlu bench-core bench load thresholds screen-report redaction-report typos leaks
.PHONY: cluster cluster-stop
.PHONY: system-deps help setup lock train build-nlp run shell test unit stories validate eval cv lint log-summary clean sms web purge audit nginx-conf

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
$(SPACY)/meta.json $(GEN_NLU) $(VOCAB) &: $(VENV)/.installed knowledge/omt.yml $(wildcard data/nlu*.yml) omt/ops/nlp_build.py omt/core/knowledge.py
	$(PY) -m omt.ops.nlp_build --out $(SPACY) --nlu $(GEN_NLU) --vocabulary $(VOCAB)

train: $(MODEL) ## Build the spaCy pipeline, then `rasa train` (skipped when no input changed)
$(MODEL): $(TRAIN_INPUTS) $(SPACY)/meta.json $(VOCAB)
	@mkdir -p models
	@# Train into a private folder, then rename: a running stack never loads a half-written model.
	flock models/.train.lock sh -c '$(RASA) train --config config.yml --domain domain.yml --data data \
	  --out models/.tmp-$$$$ --fixed-model-name omt && mv models/.tmp-$$$$/omt.tar.gz $(MODEL) && rmdir models/.tmp-$$$$'

run: $(MODEL) web ## Chat: action server (5055) + Rasa REST/socket.io (5005) + web pages (8080), SQLite tracker in .data/; Ctrl-C stops all
	MODEL=$(MODEL) scripts/run_stack.sh

CLUSTER_PORT ?= 8000
cluster: system-deps $(MODEL) web ## In the background: PostgreSQL, Redis, 2 Rasa replicas + 2 action servers, nginx on CLUSTER_PORT (8000); state in .cluster/
	$(PY) -m omt.ops.cluster start --port $(CLUSTER_PORT)

cluster-stop: ## Stop what `make cluster` started (its pid files in .cluster/); the data stays
	$(PY) -m omt.ops.cluster stop

WEB_VENDOR := web/static/vendor/socket.io.min.js
web: $(WEB_VENDOR) ## Widget + kiosk assets: `npm ci` in web/, socket.io client copied to web/static/vendor/ (git-ignored)
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
$(WEB_VENDOR): web/node_modules/.package-lock.json
	mkdir -p $(@D)
	cp web/node_modules/socket.io-client/dist/socket.io.min.js web/node_modules/socket.io-client/dist/socket.io.min.js.map $(@D)/

shell: $(MODEL) ## Terminal conversation against the running action server (start `make run` first)
	ACTION_ENDPOINT_URL=http://127.0.0.1:$(ACTIONS_PORT)/webhook $(RASA) shell --model $(MODEL) --endpoints endpoints.yml

sms: $(VENV)/.installed ## Play an SMS conversation through the real webhook with valid signatures
	$(PY) scripts/sms_demo.py $(SMS_ARGS)

validate: $(GEN_NLU) ## rasa data validate
	$(RASA) data validate --config config.yml --domain domain.yml --data data --fail-on-warnings

unit: $(VENV)/.installed ## Unit tests only (no running stack, no cluster)
	$(PY) -m pytest -m "not stack and not cluster" -q

stories: $(MODEL) ## Test stories (happy and unhappy paths)
	$(RASA) test core --model $(MODEL) --stories tests/ --fail-on-prediction-errors --out results/stories

# First, so a machine without them stops at once with the one command to run (not after training).
system-deps: ## Chromium, nginx, PostgreSQL, Redis from apt when missing (root); a quick check when present
	@scripts/install_system_deps.sh

test: system-deps lint validate $(MODEL) web ## Everything CI runs: lint, data validation, unit + stack tests, test stories, dev-set eval
	$(PY) -m pytest -q --durations=15
	$(MAKE) --no-print-directory stories

eval: $(MODEL) ## Accuracy + cited precision on question files against one stack it starts (QUESTIONS="a.yml b.yml" MIN_ACCURACY="x [y]")
	$(PY) -m omt.bench.evaluate --questions $(QUESTIONS) --min-accuracy $(MIN_ACCURACY) --start-stack

bench-nlu: $(GEN_NLU) $(SPACY)/meta.json ## Ours vs Rasa's default pipeline vs TF-IDF+logistic regression on QUESTIONS, thresholds by one rule (one run; heavy)
	$(PY) -m omt.bench.nlu_bench --questions $(QUESTIONS) --configs config.yml bench/rasa_default.yml --folds $(FOLDS) --min-precision $(MIN_PRECISION)

thresholds: $(GEN_NLU) $(SPACY)/meta.json ## Choose FallbackClassifier thresholds on CV + QUESTIONS (real_dev.yml); dev reported apart; reports/thresholds.png
	$(PY) -m omt.bench.thresholds --questions $(QUESTIONS) $(if $(wildcard $(EVAL_DIR)/dev_questions.yml),--dev $(EVAL_DIR)/dev_questions.yml) \
	  --folds $(FOLDS) --min-precision $(MIN_PRECISION)

leaks: $(VENV)/.installed ## Training examples that copy a question of EVAL_DIR (verbatim, or > 0.85 similar with the same label)
	OMT_EVAL_DIR=$(EVAL_DIR) $(PY) -m omt.bench.leaks

bench-core: $(MODEL) ## Single-user figures: train from scratch, start-up, memory, REST p50/p95 (reports/bench_core.json)
	$(PY) -m omt.bench.bench_core --train --turns 200

bench: $(MODEL) ## One run, one table: train, start-up, memory, 1-user webhook vs /model/parse, 1/8/32 users, turn 1 vs 100, cluster, `rasa init` bot (reports/bench.json, .png; BENCH_ARGS=--quick)
	$(PY) -m omt.bench.bench $(BENCH_ARGS)

screen-report: $(VENV)/.installed ## Red-flag screener figures: false alarms (NLU data, fixtures, ORDINARY=files or dirs; default ../shared/eval), recall per category, blind set, speed; SCREEN_ARGS=--medspacy adds ConText
	$(PY) -m omt.bench.screen_report --ordinary $(wildcard data/nlu*.yml) tests/fixtures/ordinary_questions.txt $(or $(ORDINARY),$(wildcard ../shared/eval)) $(SCREEN_ARGS)

redaction-report: $(VENV)/.installed build-nlp ## Names kept out of the store: our cue rules vs Presidio's recognizers (recall, false redactions, µs/message)
	$(PY) -m omt.bench.redaction_report

typos: $(VENV)/.installed ## Make a typo test set from QUESTIONS (reports/typos.yml); then `make eval QUESTIONS=reports/typos.yml`
	$(PY) -m omt.bench.typos --questions $(QUESTIONS) --out reports/typos.yml

cv: $(GEN_NLU) ## NLU cross-validation (5 folds); Rasa's reports go to results/cv
	$(RASA) test nlu --config config.yml --nlu data --cross-validation --folds 5 --out results/cv

lint: $(VENV)/.installed ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

log-summary: ## Summarise the provenance log (answers per id; not-covered/fallback/emergency rates)
	$(PY) -m omt.ops.log_summary $${LOG:-logs/replies.jsonl}

purge: $(VENV)/.installed ## Delete conversations idle for more than DAYS days (SQLite or PostgreSQL)
	@test -n "$(DAYS)" || { echo "usage: make purge DAYS=N  (database: TRACKER_DB_URL, else SQLite at TRACKER_DB)"; exit 2; }
	$(PY) -m omt.ops.retention --days $(DAYS)

# pip-audit lives in its own venv (system Python): its dependencies clash with Rasa's pins.
AUDIT_VENV   := .venv-audit
AUDIT_PYTHON ?= /usr/bin/python3
AUDIT_PROBE  := https://pypi.org/pypi/requests/2.31.0/json
audit: $(AUDIT_VENV)/.installed ## Known vulnerabilities of requirements.txt (pip-audit); fails when the database cannot answer
	@err=$$($(AUDIT_VENV)/bin/python -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=20)' '$(AUDIT_PROBE)' 2>&1 | tail -n 1); \
	if [ -n "$$err" ]; then echo "make audit: FAILED, nothing was audited: PyPI's vulnerability data does not answer ($(AUDIT_PROBE): $$err)" >&2; exit 2; fi
	@$(AUDIT_VENV)/bin/pip-audit -r requirements.txt --no-deps --disable-pip --strict --progress-spinner off --aliases on \
	  || { echo "make audit: FAILED: vulnerabilities listed above, or a package the database could not check" >&2; exit 1; }
$(AUDIT_VENV)/.installed:
	$(AUDIT_PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install -q pip-audit
	@touch $@

# Locust lives in its own venv (system Python) too: gevent, Flask and its pins must not touch Rasa's venv.
LOAD_VENV   := .venv-load
LOAD_PYTHON ?= /usr/bin/python3
DURATION    ?= 5m
USERS       ?= 50
load: $(MODEL) $(LOAD_VENV)/.installed ## USERS simulated patients (50) for DURATION (5m), think time 2-8 s, single stack and cluster; checks errors and storage (reports/load.json)
	$(PY) -m omt.bench.load --duration $(DURATION) --users $(USERS) $(LOAD_ARGS)
$(LOAD_VENV)/.installed: requirements-load.txt
	$(LOAD_PYTHON) -m venv $(LOAD_VENV)
	$(LOAD_VENV)/bin/pip install -q -r requirements-load.txt \
	  || { echo "make load: could not install Locust from PyPI (requirements-load.txt)" >&2; exit 2; }
	@touch $@

NGINX_LISTEN ?= 127.0.0.1:8000
nginx-conf: $(VENV)/.installed ## Render deploy/nginx/omt.conf to build/nginx/ (NGINX_LISTEN, SERVER_NAME, WEB_PORT, RASA_PORT)
	$(PY) scripts/render_nginx_conf.py --listen $(NGINX_LISTEN) --out build/nginx/omt.conf
	@echo "run: nginx -p $(CURDIR)/build/nginx -c $(CURDIR)/build/nginx/omt.conf -g 'daemon off;'"

clean: ## Remove built models, pipelines and results (keeps the venv)
	rm -rf build models results .rasa $(GEN_NLU)

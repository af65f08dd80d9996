# The two commands a fresh machine needs: `make run` and `make test`.
# Every step below is skipped when its inputs have not changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa
SPACY_MODEL := .build/spacy/en_clinic
MODEL := models/intake.tar.gz
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export RASA_TELEMETRY_ENABLED := false
export BOT_ACTION_SERVER_URL ?= http://localhost:5055/webhook
export BOT_TRACKER_DB ?= var/tracker.db

NLU_DATA := $(shell find data -name '*.yml' -not -path 'data/safety/*' 2>/dev/null)
SPACY_PATTERNS := $(wildcard data/spacy/*.jsonl)
# The crisis detector is measured on the development set (a copy of ../shared/eval's) and on the
# project's own test set, both layers as deployed; below the targets (100% recall on
# explicit/plan/self-harm/overdose, 95% overall, 10% hard-negative false alarms), `make test`
# fails. The blind and fresh sets were each written by another author and measured as held-out
# sets (docs/safety.md); `make safety-eval` prints every set.
CRISIS_EVAL_SETS := tests/safety/crisis_dev.jsonl tests/safety/crisis_test.jsonl
CRISIS_HELD_OUT_SETS := tests/safety/crisis_blind.jsonl tests/safety/crisis_fresh16.jsonl tests/safety/crisis_fresh17.jsonl tests/safety/crisis_fresh18.jsonl tests/safety/crisis_fresh19.jsonl tests/safety/crisis_fresh20.jsonl tests/safety/crisis_fresh21.jsonl tests/safety/crisis_fresh22.jsonl tests/safety/crisis_fresh23.jsonl
# The model's crisis classifier is trained on these (bot/safety/classifier.py).
CRISIS_TRAIN := $(wildcard data/safety/crisis_train*.jsonl)

.PHONY: help setup run test test-unit test-rasa lint bench db chromium clean safety-eval

help:
	@echo "make run    set everything up, then run the assistant, widget demo page and services"
	@echo "make test   set everything up, then run every check"
	@echo "make lint   ruff and mypy"
	@echo "make bench  latency and throughput figures"
	@echo "make safety-eval  crisis detection figures on the evaluation sets"

$(VENV)/.installed: requirements.lock pyproject.toml
	@PYBIN=$$(scripts/find-python310.sh) && echo "Using $$PYBIN" && \
	  { [ -x $(PY) ] || $$PYBIN -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade "pip<24.1"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(SPACY_MODEL)/meta.json: $(VENV)/.installed $(SPACY_PATTERNS) bot/nlp/build.py
	$(PY) -m bot.nlp.build --out $(SPACY_MODEL) --patterns data/spacy

$(MODEL): $(SPACY_MODEL)/meta.json config.yml domain.yml $(NLU_DATA) $(CRISIS_TRAIN) data/safety/crisis_patterns.yml bot/safety/classifier.py
	$(RASA) train --fixed-model-name intake --out models --quiet

db: $(VENV)/.installed
	$(VENV)/bin/bot db upgrade

setup: $(VENV)/.installed $(SPACY_MODEL)/meta.json $(MODEL) db

run: setup
	$(VENV)/bin/bot run

chromium:
	@scripts/ensure-chromium.sh

test: setup chromium lint
	$(PY) -m pytest -q -rs -p no:cacheprovider
	$(MAKE) --no-print-directory test-rasa

test-rasa: setup
	$(RASA) data validate --quiet
	$(RASA) test core --stories tests/stories --model $(MODEL) --fail-on-prediction-errors --out results/core
	$(RASA) test nlu --nlu tests/nlu/test_nlu.yml --model $(MODEL) --out results/nlu
	$(PY) -m bot.nlu_report results/nlu
	$(PY) -m bot.safety.evaluate --check --model $(MODEL) $(CRISIS_EVAL_SETS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check bot actions tests
	$(VENV)/bin/mypy bot actions

safety-eval: setup
	$(PY) -m bot.safety.evaluate --model $(MODEL) $(CRISIS_EVAL_SETS) $(CRISIS_HELD_OUT_SETS)

bench: setup
	$(PY) -m bot.bench

clean:
	rm -rf .build models results artifacts

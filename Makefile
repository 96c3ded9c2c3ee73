# The README's commands. Everything runs from a local virtualenv (.venv) built from the
# pinned requirements, so a fresh clone needs only python3 (3.9+) and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PYTHONPATH := layers/sesmail:.

.PHONY: dev test lint unit bench layer clean docs sync deploy

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

## dev: the local stack: functions behind a gateway on :8080, SES emulator and mail page on :8090,
## timers from serverless.yml; prints every URL and the dev key; Ctrl-C stops it. ARGS="--apigw" etc.
dev: $(STAMP)
	$(BIN)/python -m local $(ARGS)

## test: lint (ruff, py39 target), Python 3.9 compatibility (vermin), types (mypy), pytest
test: lint unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/vermin --no-tips --violations -t=3.9- --eval-annotations --backport typing \
	    layers/sesmail/sesmail functions local deploy
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

## bench: the figures of SPEC section 6, as ratios against baselines measured in the same run
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache

## layer: the layer zip for SCF (Linux x86_64, Python $(RUNTIME)); prints its size. DRIVER adds the database
## driver: DRIVER="pg8000==1.31.5 scramp==1.4.6" (versions that still run on Python 3.9) or DRIVER=PyMySQL==1.2.4
RUNTIME ?= 3.9
DRIVER ?=
layer: $(STAMP)
	$(BIN)/python layers/sesmail/build.py --python-version $(RUNTIME) $(foreach d,$(DRIVER),--extra $(d))

## docs: regenerate the README's generated tables
docs: $(STAMP)
	$(BIN)/python -m local.docs

## sync: senders (CreateEmailAddress) and templates/ (Create/UpdateEmailTemplate, only when changed) to
## SES; writes Templates and TemplateVariables into sesmail.json. ARGS="--dry-run", ARGS="--local" (make dev)
sync: $(STAMP)
	$(BIN)/python -m deploy sync $(ARGS)

## deploy: the layer, then send, batch and webhook, with Tencent's `scf` CLI (it says how to install it
## when missing); STAGE (dev) and SESMAIL_DEPLOY_REGION (ap-guangzhou) pick where
deploy: layer
	$(BIN)/python -m deploy deploy

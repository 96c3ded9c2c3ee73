# The README's commands. Everything runs from a local virtualenv (.venv) built from the
# pinned requirements, so a fresh clone needs only python3 (3.9 or newer) and make.
# `make help` lists the targets: each `## name: text` line below documents the target after it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PYTHONPATH := layers/sesmail:.

.DEFAULT_GOAL := help
.PHONY: help dev fire test services lint unit bench layer clean docs sync deploy rollback

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 9))' || { \
	    echo "sesmail needs Python 3.9 or newer ($(PY) is $$($(PY) -V 2>&1)); try: make PY=python3.11 …" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

## help: this list
help:
	@echo "make <target> [VARIABLE=value …]; a fresh clone needs only python3 (3.9+) and make"
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); split($$0, part, ":"); name = part[1]; \
	        sub(/^[a-z-]+: */, ""); printf "  %-8s %s\n", name, $$0; next } \
	      /^## / { sub(/^## /, ""); printf "  %-8s %s\n", "", $$0 }' $(MAKEFILE_LIST)

## dev: the local stack: functions behind a gateway on :8080, SES emulator and mail page on :8090,
## timers from serverless.yml; prints every URL and the dev key; Ctrl-C stops it. ARGS="--apigw" etc.
dev: $(STAMP)
	$(BIN)/python -m local $(ARGS)

## fire: run a timer of the running `make dev` now: make fire TRIGGER=digest-daily
## (without TRIGGER: the timers it knows)
fire: $(STAMP)
	$(BIN)/python -m local fire $(TRIGGER) $(ARGS)

## test: starts PostgreSQL, MariaDB and Redis when installed and not running (.ci/services), then
## lint and pytest (their tests skip with the reason when a server is missing)
test: services lint unit

services:
	.ci/services

## lint: ruff (py39 target), Python 3.9 compatibility (vermin), types (mypy, on Python 3.10+)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/vermin --no-tips --violations -t=3.9- --eval-annotations --backport typing \
	    layers/sesmail/sesmail functions local deploy
	@if [ -x $(BIN)/mypy ]; then echo "$(BIN)/mypy"; $(BIN)/mypy; \
	else echo "mypy skipped: it needs Python 3.10 or newer to check this tree (this .venv has $$($(BIN)/python -V))"; fi

## unit: pytest alone (ARGS="tests/functional -x" etc.)
unit: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

## bench: the figures of docs/benchmarks.md, each a ratio against a baseline measured in the
## same run, with its goal and whether it holds; ARGS=--quick for a short run
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

## clean: the virtualenv, build/ and the tools' caches (not .local-data/, the local stack's mail)
clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache

## layer: the layer zip for SCF (Linux x86_64, Python 3.9; RUNTIME=3.10 for 3.10); prints its size. DRIVER
## adds a database driver, named in the zip: DRIVER="pg8000==1.31.5 scramp==1.4.6" (versions that still run on
## Python 3.9) gives build/sesmail-layer-py3.9-pg8000.zip, DRIVER=PyMySQL==1.2.4 …-pymysql.zip
RUNTIME ?= 3.9
DRIVER ?=
layer: $(STAMP)
	$(BIN)/python layers/sesmail/build.py --python-version $(RUNTIME) $(foreach d,$(DRIVER),--extra $(d))

## docs: regenerate the rule tables of docs/api.md and openapi.json
docs: $(STAMP)
	$(BIN)/python -m local.docs

## sync: senders (CreateEmailAddress) and templates/ (Create/UpdateEmailTemplate, only when changed) to
## SES; writes Templates and TemplateVariables into sesmail.json. ARGS="--dry-run", ARGS="--local" (make dev)
sync: $(STAMP)
	$(BIN)/python -m deploy sync $(ARGS)

## deploy: the layer, then send, batch and webhook with their timers and Function URLs, through SCF's API
## (only what differs; credentials TENCENTCLOUD_SECRETID/SECRETKEY); ARGS=--plan prints the diff and changes
## nothing, ARGS=--cli uses Tencent's `scf` CLI instead. STAGE (dev), SESMAIL_DEPLOY_REGION (ap-guangzhou)
deploy: layer
	$(BIN)/python -m deploy deploy $(ARGS)

## rollback: move the aliases the last `make deploy` moved back to the versions they served before
## (ARGS=--plan shows which); again goes one deploy further back
rollback: $(STAMP)
	$(BIN)/python -m deploy rollback $(ARGS)

# spigot — developer entry points. GNU make; run `make help` for the list.
#
# Python-side tools (moto, SAM CLI, cfn-lint, cargo-lambda + zig, osmem-server) live in
# .venv, installed from requirements-dev.txt; nothing is installed globally.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV := .venv
VENV_BIN := $(CURDIR)/$(VENV)/bin
VENV_STAMP := $(VENV)/.installed-requirements-dev

# Lambda function binaries (one crate each under functions/).
FUNCTIONS := process_webhooks send_from_queue gitlab_ingest port_runner log_tailer aliecs_ingest
LAMBDA_TARGET := aarch64-unknown-linux-gnu
# Where cargo-lambda (and so `sam build`) leaves the arm64 release binaries:
# <function>/bootstrap.
ARM64_RELEASE_DIR = $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/lambda
# Debian's arm64 libc (libc6-arm64-cross), for qemu-user to run arm64 binaries with.
ARM64_SYSROOT := /usr/aarch64-linux-gnu
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# How cargo links and runs arm64 test binaries: here only, not in a .cargo/config that
# native builds would read too.
ARM64_CARGO_ENV := CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $(ARM64_SYSROOT)"
ARM64_UNIT_CRATES := spigot-common aliecs_ingest
# These two at opt-level 3 as in the release profile (their code as Lambda runs it, and
# the line parser's hostile-log test takes minutes under qemu unoptimised); their
# dependencies stay in the test profile. A --release test build would share nothing with
# cargo-lambda's: tests need panic=unwind, so every dependency is built again.
ARM64_UNIT_OPT := $(foreach crate,$(ARM64_UNIT_CRATES),--config 'profile.test.package.$(crate).opt-level=3')

# AWS tooling runs offline here: dummy credentials, a fixed region, no telemetry.
AWS_OFFLINE := AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export SAM_CLI_TELEMETRY := 0

# CI (CI=true) runs the nextest `ci` profile from .config/nextest.toml.
ifneq ($(filter true 1,$(CI)),)
export NEXTEST_PROFILE ?= ci
endif

.PHONY: help venv targets arm64-tools demo up down lint lint-template lint-rust test test-arm64 bench fuzz fuzz-ci build sam-build deploy clean distclean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

# ------------------------------------------------------------------ setup

venv: $(VENV_STAMP) ## create .venv with the pinned Python-side tools

# Reinstalls only when requirements-dev.txt changes (or the venv is broken).
$(VENV_STAMP): requirements-dev.txt
	@if ! $(VENV)/bin/python -c 'import sys' 2>/dev/null; then \
	  echo "==> creating $(VENV)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); \
	fi
	@echo "==> installing requirements-dev.txt into $(VENV)"
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

targets: ## add the Rust target Lambda arm64 builds need
	rustup target add $(LAMBDA_TARGET)

# qemu-user runs arm64 binaries here; the cross gcc links the arm64 test binaries.
arm64-tools: targets ## qemu-user, Debian's arm64 libc and gcc (apt-get, when missing)
	@if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null \
	    || [ ! -e $(ARM64_SYSROOT)/lib/ld-linux-aarch64.so.1 ]; then \
	  echo "==> apt-get install qemu-user libc6-arm64-cross gcc-aarch64-linux-gnu"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) apt-get install -y -q qemu-user libc6-arm64-cross gcc-aarch64-linux-gnu; \
	fi

# ------------------------------------------------------------------ run

demo: venv ## the whole system on this machine through a narrated scenario; exits 0 only when the numbers add up
	cargo build --workspace --bins
	SPIGOT_VENV=$(CURDIR)/$(VENV) cargo run --quiet -p spigot-local -- demo

up: venv ## run the local stack until Ctrl-C (UP_ARGS="--runtime binaries" skips cargo lambda watch)
	cargo build --workspace --bins
	SPIGOT_VENV=$(CURDIR)/$(VENV) cargo run --quiet -p spigot-local -- up $(UP_ARGS)

down: ## stop the stack `make up` started
	cargo run --quiet -p spigot-local -- down

# ------------------------------------------------------------------ checks

lint: lint-template lint-rust ## sam validate + cfn-lint + rustfmt + clippy

lint-template: venv
	@echo "==> sam validate"
	$(AWS_OFFLINE) $(VENV_BIN)/sam validate --region us-east-1 --template template.yaml
	@echo "==> cfn-lint"
	$(AWS_OFFLINE) $(VENV_BIN)/cfn-lint template.yaml

lint-rust:
	@echo "==> cargo fmt --check"
	cargo fmt --all -- --check
	@echo "==> cargo clippy"
	cargo clippy --workspace --all-targets -- -D warnings

test: venv lint ## lint, then every test (the tests start moto from .venv themselves)
	@echo "==> cargo build --workspace --bins (the smoke test runs the function binaries)"
	cargo build --workspace --bins
	@echo "==> cargo nextest ($${NEXTEST_PROFILE:-default} profile)"
	SPIGOT_VENV=$(CURDIR)/$(VENV) cargo nextest run --workspace --no-fail-fast

# What a deploy runs on, run here under qemu-user: the smoke tests with the arm64 release
# binaries `sam build` packed (built once, by sam-build), then the unit tests of the crates
# whose code paths differ by architecture (SIMD base64 and memchr in the log-line parser
# and the Kafka reader, XXH3 document ids in aliecs_ingest) built for arm64.
test-arm64: sam-build arm64-tools ## the smoke tests with the arm64 release binaries, then arm64 unit tests, under qemu-user
	@echo "==> smoke tests with the arm64 release binaries under qemu-aarch64"
	SPIGOT_VENV=$(CURDIR)/$(VENV) SPIGOT_FUNCTION_BINARIES=$(ARM64_RELEASE_DIR) \
	  SPIGOT_FUNCTION_RUNNER=qemu-aarch64 QEMU_LD_PREFIX=$(ARM64_SYSROOT) \
	  cargo nextest run --workspace --test lambda_smoke --no-fail-fast
	@echo "==> unit tests of $(ARM64_UNIT_CRATES) built for $(LAMBDA_TARGET), under qemu-aarch64"
	$(ARM64_CARGO_ENV) cargo nextest run --target $(LAMBDA_TARGET) $(addprefix -p ,$(ARM64_UNIT_CRATES)) \
	  $(ARM64_UNIT_OPT) --no-fail-fast --no-tests=fail

bench: venv targets ## benchmarks: prints a table, never fails the build on a missed target
	SPIGOT_VENV=$(CURDIR)/$(VENV) PATH="$(VENV_BIN):$$PATH" scripts/bench.sh

fuzz: ## every fuzz target for FUZZ_SECONDS (default 60) each; a table; fails on findings
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} scripts/fuzz.sh

fuzz-ci: ## the short fuzz pass CI runs: 20 s a target
	FUZZ_SECONDS=$${FUZZ_SECONDS:-20} scripts/fuzz.sh

# ------------------------------------------------------------------ build and deploy

# cargo-lambda cross-compiles with zig from the ziglang wheel: .venv/bin goes first on
# PATH so that it finds both (it runs `python3 -m ziglang`).
build: venv targets ## release arm64 Lambda zips: target/lambda/<function>/bootstrap.zip
	PATH="$(VENV_BIN):$$PATH" cargo lambda build --release --arm64 --output-format zip \
	  $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do ls -l "$${CARGO_TARGET_DIR:-target}/lambda/$$f/bootstrap.zip"; done

# The build of `make deploy` (scripts/deploy.sh: `sam build` with .venv first on PATH; the
# template's BuildMethod rust-cargolambda runs cargo-lambda + zig for arm64), offline,
# then a check that every function's bootstrap is an arm64 ELF, the one tests run.
sam-build: venv targets ## what a deploy builds (sam build), checked: every bootstrap an arm64 ELF
	PATH="$(VENV_BIN):$$PATH" $(AWS_OFFLINE) sam build
	$(VENV_BIN)/python scripts/check-arm64-artefacts.py --same-as $(ARM64_RELEASE_DIR)

deploy: venv targets ## sam build && sam deploy --guided, keeping spigot_state as it was (needs AWS credentials)
	PATH="$(VENV_BIN):$$PATH" scripts/deploy.sh

# ------------------------------------------------------------------ housekeeping

clean: ## remove SAM and cargo-lambda build output
	rm -rf .aws-sam target/lambda

distclean: clean ## also remove .venv and target/
	rm -rf $(VENV)
	cargo clean

# stackwave — the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
STACKWAVE := target/debug/stackwave
ENV ?= demo
export SAM_CLI_TELEMETRY := 0

.PHONY: setup demo test gates fmt clippy unit check-asl check-template e2e emulator-tests \
        local-start local-stop build check-package measure-functions bench clean

setup:
	@scripts/setup.sh

$(STACKWAVE): setup FORCE
	@$(CARGO) build --quiet -p stackwave-cli

FORCE:

## The first README command: deploy the Bellyfed example on the local emulator, with live progress.
demo: $(STACKWAVE)
	$(STACKWAVE) local start --stack-seconds $${STACK_SECONDS:-3}
	$(STACKWAVE) deploy examples/bellyfed --environment $(ENV) --local

## The second README command (and what .ci/run calls): every gate and every test, then the
## packaging check (the arm64 release builds and `sam build`: the slowest step, 14 minutes cold on
## 2 CPUs, seconds when cargo's cache is warm), last so that faster failures come first.
test: setup gates unit check-asl check-template emulator-tests e2e check-package
	@echo "make test: all gates and tests passed"

gates: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

unit:
	$(CARGO) test --workspace --exclude stackwave-e2e

check-asl:
	scripts/check-asl.sh

check-template:
	scripts/check-template.sh

emulator-tests:
	.venv/bin/python -m pytest emulator/tests -q

## End-to-end tests: the real state machine in moto's executor, the real handlers behind the
## gateway. The tests start the emulator on their own endpoint and stop it afterwards.
e2e: $(STACKWAVE)
	STACKWAVE_LOCAL_ENDPOINT=$${STACKWAVE_TEST_ENDPOINT:-http://127.0.0.1:4766} \
	  $(CARGO) test -p stackwave-e2e -- --test-threads=4; \
	  status=$$?; \
	  STACKWAVE_LOCAL_ENDPOINT=$${STACKWAVE_TEST_ENDPOINT:-http://127.0.0.1:4766} $(STACKWAVE) local stop >/dev/null 2>&1; \
	  exit $$status

## Release builds for AWS Lambda (arm64, provided.al2023): every function with cargo-lambda (it
## links with the zig from .venv, so .venv/bin comes first on PATH), then `sam build`, which
## builds each function again through cargo-lambda (no-op, cargo's cache) into .aws-sam/build.
## Slow and CPU-heavy: run at the lowest priority.
# The functions' binaries, as template.yaml names them (Metadata.BuildProperties.Binary).
LAMBDA_BINS = $(shell sed -n 's/^ *Binary: *//p' template.yaml)
VENV_PATH := $(CURDIR)/.venv/bin:$(PATH)

build: setup
	@if command -v rustup >/dev/null; then rustup target add aarch64-unknown-linux-gnu; fi
	PATH="$(VENV_PATH)" nice -n 19 .venv/bin/cargo-lambda lambda build --release --arm64 \
	  $(addprefix --bin ,$(LAMBDA_BINS))
	PATH="$(VENV_PATH)" nice -n 19 .venv/bin/sam build --beta-features

## Everything that goes into `sam deploy`: the release builds and the template checks.
check-package: build check-template

## Zip sizes and cold-start init times of the functions, into BENCHMARKS.md.
measure-functions: setup
	scripts/measure-functions.sh

local-start: $(STACKWAVE)
	$(STACKWAVE) local start

local-stop: $(STACKWAVE)
	$(STACKWAVE) local stop

## Benchmarks on the local emulator (its own endpoint, STACKWAVE_BENCH_ENDPOINT, default
## http://127.0.0.1:4966, stopped afterwards): makespan vs ideal, history events and cost, scale,
## handler times. Rewrites BENCHMARKS.md, keeping its "Functions: package size and cold start"
## section. About 12 minutes on 2 CPUs; BENCH_BUDGET_SECONDS bounds the optional runs.
bench: $(STACKWAVE)
	@$(CARGO) build --quiet -p stackwave-bench
	target/debug/stackwave-bench --out BENCHMARKS.md --budget-seconds $${BENCH_BUDGET_SECONDS:-1500}

clean:
	$(CARGO) clean
	rm -rf .aws-sam .stackwave

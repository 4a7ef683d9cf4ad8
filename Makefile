# Zhengyun — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /usr/bin/env bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: postgres postgres-down run test test-faults cluster cluster-down devcluster tools fmt-check clippy unit e2e generate generate-check bench clean

## run: the devcluster, the CRDs and sample tenants, and `zhengyun dev` (API + operator); Ctrl-C stops it
run:
	@scripts/run.sh

## test: formatting, lints, unit tests, generated-file drift, then integration tests on a devcluster
test: tools fmt-check clippy unit generate-check e2e

tools:
	@scripts/ensure-tools.sh

fmt-check:
	$(CARGO) fmt --all -- --check
	cd tests/devcluster && test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## test-faults: the fault suite (control plane and database stopped and restarted, operator
## killed mid-convergence, expired watches) on a devcluster and PostgreSQL of its own
test-faults: devcluster
	$(CARGO) build -p zhengyun --locked
	scripts/faults.sh

## unit: unit tests, and the store's suite on SQLite and on a real PostgreSQL
unit:
	scripts/with-postgres.sh $(CARGO) test --workspace --exclude zhengyun-e2e --locked

e2e: devcluster
	$(CARGO) build -p zhengyun --locked
	scripts/with-cluster.sh scripts/e2e.sh
	@echo "operator log of the end-to-end run: target/e2e-operator.log"

## generate: regenerate committed files (CRD YAML)
generate:
	scripts/generate.sh

generate-check:
	scripts/generate.sh --check

devcluster:
	@scripts/build-devcluster.sh

cluster:
	@scripts/cluster.sh up

cluster-down:
	@scripts/cluster.sh down

postgres:
	@scripts/postgres.sh up

postgres-down:
	@scripts/postgres.sh down

## bench: performance figures (release build); BENCH_SIZES overrides the environment counts
BENCH_SIZES ?= 200 1000
bench: devcluster
	$(CARGO) build --release --locked -p zhengyun
	$(CARGO) build --release --locked -p zhengyun-e2e --bin bench-converge
	scripts/with-cluster.sh target/release/bench-converge $(BENCH_SIZES)
	$(CARGO) run --release --locked -p zhengyun-store --example ingest

clean: cluster-down postgres-down
	rm -rf target .devcluster .devcluster-faults tests/devcluster/bin

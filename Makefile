# Zhengyun — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /usr/bin/env bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: postgres postgres-down run test cluster cluster-down devcluster tools fmt-check clippy unit e2e generate generate-check bench clean

## run: start the devcluster and show how to use it
run: cluster
	@echo
	@echo "The devcluster is running. Use it with:"
	@echo "  export KUBECONFIG=$(CURDIR)/.devcluster/kubeconfig"
	@echo "  $(CURDIR)/tests/devcluster/bin/kubectl get nodes"
	@echo "Stop it with: make cluster-down"

## test: formatting, lints, unit tests, generated-file drift, then integration tests on a devcluster
test: tools fmt-check clippy unit generate-check e2e

tools:
	@scripts/ensure-tools.sh

fmt-check:
	$(CARGO) fmt --all -- --check
	cd tests/devcluster && test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## unit: unit tests, and the store's suite on SQLite and on a real PostgreSQL
unit:
	scripts/with-postgres.sh $(CARGO) test --workspace --exclude zhengyun-e2e --locked

e2e: devcluster
	$(CARGO) build -p zhengyun --locked
	scripts/with-cluster.sh $(CARGO) test -p zhengyun-e2e --locked -- --test-threads=8
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
	$(CARGO) run --release --locked -p zhengyun-store --example month

clean: cluster-down postgres-down
	rm -rf target .devcluster tests/devcluster/bin

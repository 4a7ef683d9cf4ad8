# Zhengyun — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /usr/bin/env bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help fuzz postgres postgres-down run test test-faults cluster cluster-down devcluster helm tools fmt-check clippy unit e2e chart docs generate generate-check bench clean

## run: the devcluster, the CRDs and sample tenants, and `zhengyun dev` (API + operator); Ctrl-C stops it
run:
	@scripts/run.sh

## test: formatting, lints, unit tests, generated-file drift, then integration tests on a devcluster
test: tools fmt-check clippy unit generate-check e2e chart docs

## tools: check Go and Rust, and install promtool if missing (schemathesis installs itself in .tools/)
tools:
	@scripts/ensure-tools.sh

## fmt-check: rustfmt and gofmt, checking only
fmt-check:
	$(CARGO) fmt --all -- --check
	cd tests/devcluster && test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

## clippy: lints, warnings as errors
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

# The chart's checks run on a fresh devcluster of their own, so that they see a cluster without
# Zhengyun and leave the development cluster alone.
CHECKS_CLUSTER := DEVCLUSTER_DIR=.devcluster/checks DEVCLUSTER_ARGS=--fresh scripts/with-cluster.sh

## chart: helm lint, server-side dry-runs of the chart and manifests/deploy, least-privilege RBAC
chart: devcluster helm
	$(CARGO) build -p zhengyun --locked
	$(CHECKS_CLUSTER) scripts/check-chart.sh

## docs: run the guides' commands (docs/operators.md: install with Helm, onboard bureaus, upgrade)
docs: devcluster helm
	$(CARGO) build -p zhengyun --locked
	$(CHECKS_CLUSTER) scripts/check-docs.sh
	@echo "operator log of the guide's run: target/docs-operator.log"

## fuzz: every fuzz target briefly (FUZZ_SECONDS each, default 20); longer by hand: cd fuzz && cargo +nightly fuzz run specs
fuzz:
	scripts/fuzz.sh

## generate: regenerate committed files (CRD YAML, the chart's CRDs, manifests/deploy)
generate:
	scripts/generate.sh

## generate-check: fail if a committed generated file differs from what the code generates
generate-check:
	scripts/generate.sh --check

## devcluster: build the local Kubernetes control plane (tests/devcluster) from the Go module proxy
devcluster:
	@scripts/build-devcluster.sh

## helm: build tools/helm/bin/helm from the Go module proxy
helm:
	@scripts/build-helm.sh

## cluster: start the devcluster in the background (KUBECONFIG=.devcluster/kubeconfig)
cluster:
	@scripts/cluster.sh up

## cluster-down: stop it
cluster-down:
	@scripts/cluster.sh down

## postgres: start a throwaway PostgreSQL for the store tests (scripts/postgres.sh url prints its URL)
postgres:
	@scripts/postgres.sh up

## postgres-down: stop it
postgres-down:
	@scripts/postgres.sh down

## bench: performance figures (release build); BENCH_SIZES overrides the environment counts
# Five runs at 1,000 environments (the ratio's spread; a floor between each two) and one at 10,000
# across 1,000 bureaus.
BENCH_SIZES ?= 1000 1000 1000 1000 1000 10000
# Running pods spread over the largest size's environments, for the operator's memory with pods.
BENCH_PODS ?= 30000
# Benchmarks run on a fresh devcluster of their own, so that earlier runs' objects do not weigh;
# six simulated nodes hold BENCH_PODS.
BENCH_CLUSTER := DEVCLUSTER_DIR=.devcluster/bench DEVCLUSTER_NODES=6 DEVCLUSTER_ARGS="--fresh --node-pods 6000 --node-cpu 64" scripts/with-cluster.sh
bench: devcluster
	@mkdir -p target/bench && date +%s > target/bench/started
	$(CARGO) build --release --locked -p zhengyun
	$(CARGO) build --release --locked -p zhengyun-e2e --bin bench
	BENCH_PODS=$(BENCH_PODS) $(BENCH_CLUSTER) target/release/bench converge $(BENCH_SIZES)
	$(BENCH_CLUSTER) target/release/bench api
	$(BENCH_CLUSTER) target/release/bench borrowing
	$(BENCH_CLUSTER) target/release/bench console
	$(CARGO) build --release --locked -p zhengyun-store --example ingest --example month --example audit
	target/release/examples/ingest
	target/release/examples/month
	target/release/examples/audit
	scripts/with-postgres.sh scripts/bench-postgres.sh
	@python3 scripts/bench-report.py

## clean: stop both and remove every build and cluster directory
clean: cluster-down postgres-down
	rm -rf target .devcluster .devcluster-faults tests/devcluster/bin tools/helm/bin

## help: this list
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); name = $$1; sub(/^[a-z-]+: */, ""); printf "  make %-15s %s\n", substr(name, 1, length(name) - 1), $$0; next } \
	     /^## / { sub(/^## /, ""); printf "  %-20s %s\n", "", $$0 }' $(MAKEFILE_LIST)

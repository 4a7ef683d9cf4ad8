#!/usr/bin/env bash
# The end-to-end stage of `make test`, on the cluster in KUBECONFIG (scripts/with-cluster.sh
# provides one): the Rust end-to-end suite, then schemathesis against the running API.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?run through scripts/with-cluster.sh}"
cargo test -p zhengyun-e2e --locked -- --test-threads=8
SCHEMATHESIS_SEED=${SCHEMATHESIS_SEED:-20261127} scripts/schemathesis.sh
scripts/check-api-guides.sh

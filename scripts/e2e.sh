#!/usr/bin/env bash
# The end-to-end stage of `make test`, on the cluster in KUBECONFIG (scripts/with-cluster.sh
# provides one): the Rust end-to-end suite, the date checks (the date-sensitive tests again with
# the platform's clock moved), then schemathesis against the running API and the guides.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?run through scripts/with-cluster.sh}"
# Tests that change the capacity pool, which every environment shares, run alone afterwards.
cargo test -p zhengyun-e2e --locked -- --test-threads=8 --skip pool_wide::
cargo test -p zhengyun-e2e --locked --test borrowing -- --test-threads=1
cargo test -p zhengyun-e2e --locked --test availability -- --test-threads=1
scripts/check-dates.sh
SCHEMATHESIS_SEED=${SCHEMATHESIS_SEED:-20261127} scripts/schemathesis.sh
scripts/check-api-guides.sh

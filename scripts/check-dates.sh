#!/usr/bin/env bash
# The date checks of `make test`: the end-to-end tests whose outcome depends on the date run
# again with the platform's clock (metering and statements: ZHENGYUN_CLOCK_OFFSET, which the
# tests read too) moved to three instants in Asia/Shanghai: the last second of a month that is
# also a year's last, the first second of the next, and noon of 29 February 2028. The cluster
# keeps its own clock. The same rules run at these instants with a stopped clock in the unit
# tests (crates/zhengyun-metering/tests/instants.rs, the sampler's windows).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?run through scripts/with-cluster.sh}"
instants=("2026-12-31T23:59:59+08:00" "2027-01-01T00:00:00+08:00" "2028-02-29T12:00:00+08:00")
tests=(--test statements --test month_end)
cargo test -q -p zhengyun-e2e --locked --no-run "${tests[@]}"
for instant in "${instants[@]}"; do
  offset=$(( $(date -d "$instant" +%s) - $(date +%s) ))
  echo "== the platform's clock at $instant (moved ${offset} s)"
  ZHENGYUN_CLOCK_OFFSET=$offset cargo test -p zhengyun-e2e --locked "${tests[@]}" -- --test-threads=8
done

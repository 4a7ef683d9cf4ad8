#!/usr/bin/env bash
# The store's benchmarks of `make bench` on PostgreSQL (run through scripts/with-postgres.sh):
# each on a database of its own, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ZHENGYUN_TEST_POSTGRES_URL:?run through scripts/with-postgres.sh}"
for example in ingest month audit; do
  db="zhengyun_bench_${example}_$$"
  url=$(scripts/postgres.sh create-database "$db")
  case $example in
    # Batches of 50,000: each transaction costs PostgreSQL a fixed round-trip time (see
    # docs/performance.md), which larger batches spread.
    ingest) target/release/examples/ingest 500000 50000 "$url" ;;
    month) target/release/examples/month 1000 "$url" ;;
    audit) target/release/examples/audit 50 20 "$url" ;;
  esac
  scripts/postgres.sh drop-database "$db"
done

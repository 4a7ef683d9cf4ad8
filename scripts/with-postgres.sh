#!/usr/bin/env bash
# Runs a command with ZHENGYUN_TEST_POSTGRES_URL pointing at a real PostgreSQL, over TLS that
# verifies the server (and ZHENGYUN_TEST_POSTGRES_UNTRUSTED_CA naming an authority that did not
# sign its certificate). Starts one if none is running (and none was given), and stops what it
# started when the command ends.
set -euo pipefail
cd "$(dirname "$0")/.."
started=0
if [ -z "${ZHENGYUN_TEST_POSTGRES_URL:-}" ]; then
  if ! scripts/postgres.sh status >/dev/null 2>&1; then
    scripts/postgres.sh up
    started=1
  fi
  ZHENGYUN_TEST_POSTGRES_URL=$(scripts/postgres.sh tls-url)
  ZHENGYUN_TEST_POSTGRES_UNTRUSTED_CA=$(scripts/postgres.sh untrusted-ca)
  export ZHENGYUN_TEST_POSTGRES_URL ZHENGYUN_TEST_POSTGRES_UNTRUSTED_CA
fi
cleanup() { if [ "$started" = 1 ]; then scripts/postgres.sh down; fi; }
trap cleanup EXIT
"$@"

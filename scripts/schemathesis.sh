#!/usr/bin/env bash
# Property-based tests of the running API against its own OpenAPI document (schemathesis):
# no server errors, every status code, content type and body as documented, schema-violating
# requests refused. Needs a cluster in KUBECONFIG (run through scripts/with-cluster.sh).
#
# schemathesis is installed from PyPI into .tools/venv on first use. SCHEMATHESIS_EXAMPLES
# (default 30) sets the examples per operation; SCHEMATHESIS_SEED fixes the generation seed
# (CI uses a fixed one so a failure reproduces; leave it unset for a new exploration).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?run through scripts/with-cluster.sh}"
VENV=.tools/venv
VERSION=4.32.5
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -F "$VERSION" >/dev/null; then
  echo "installing schemathesis $VERSION into $VENV…"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

cargo build -q --locked -p zhengyun
BIN=target/debug/zhengyun
KUBECTL=tests/devcluster/bin/kubectl
"$BIN" crds | "$KUBECTL" apply --server-side --field-manager=zhengyun-e2e -f - >/dev/null
"$BIN" policies | "$KUBECTL" apply --server-side --force-conflicts --field-manager=zhengyun-e2e -f - >/dev/null
"$KUBECTL" apply --server-side --force-conflicts --field-manager=zhengyun-e2e -f manifests/samples/bureaus-haidian.yaml >/dev/null

work=$(mktemp -d)
token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Schemathesis's auth checks send many bad tokens from this one address; the limit of failed
# authentication is tested in the API's handler tests, not here.
ZHENGYUN_BOOTSTRAP_TOKEN=$token ZHENGYUN_DATABASE_URL="sqlite://$work/api.db?mode=rwc" \
ZHENGYUN_API_AUTH_MAX_FAILURES=1000000 \
ZHENGYUN_API_ADDR=127.0.0.1:$port "$BIN" api --log-format json > "$work/api.log" 2>&1 &
api=$!
trap 'kill $api 2>/dev/null; wait $api 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.5
done

seed_args=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed_args=(--seed "$SCHEMATHESIS_SEED")
status=0
"$VENV/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks all --exclude-checks positive_data_acceptance \
  -n "${SCHEMATHESIS_EXAMPLES:-30}" "${seed_args[@]}" \
  --generation-database none --no-color || status=$?

# Belt and braces: the server's own log must show no 500 either.
if grep -q '"status":500' "$work/api.log"; then
  echo "the API answered 500 during the run:" >&2
  grep '"status":500' "$work/api.log" | head -5 >&2
  status=1
fi
exit $status

#!/usr/bin/env bash
# Runs the commands of the API users' guides (docs/bureau-staff.md, docs/auditors.md,
# docs/finance.md, docs/platform-team.md) against a real `zhengyun dev` on the cluster in
# KUBECONFIG, so that they cannot rot:
#   scripts/check-api-guides.sh [guide.md …]
#
# Every fenced block marked ```sh is run, in order, by one bash (set -euo pipefail) with
# target/debug on PATH and the variables `make run` provides: ZHENGYUN_API_URL,
# ZHENGYUN_ADMIN_TOKEN, ZHENGYUN_BUREAU (a fresh bureau for this run), ZHENGYUN_BUREAU_TOKEN,
# and ZHENGYUN_AUDITOR_TOKEN / ZHENGYUN_FINANCE_TOKEN. Blocks marked ```console are not run.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?run through scripts/with-cluster.sh}"
ROOT=$PWD
guides=("$@")
[ ${#guides[@]} -gt 0 ] || guides=(docs/bureau-staff.md docs/auditors.md docs/finance.md docs/platform-team.md)
BIN=$ROOT/target/debug/zhengyun
KUBECTL=$ROOT/tests/devcluster/bin/kubectl
cargo build -q --locked -p zhengyun

"$BIN" crds | "$KUBECTL" apply --server-side --field-manager=zhengyun-docs -f - >/dev/null
"$BIN" policies | "$KUBECTL" apply --server-side --force-conflicts --field-manager=zhengyun-docs -f - >/dev/null
"$KUBECTL" apply --server-side --force-conflicts --field-manager=zhengyun-docs \
  -f manifests/samples/capacitypool.yaml -f manifests/samples/ratecard-2026.yaml >/dev/null
bureau=wjw$(date +%s | tail -c 6)
cat <<YAML | "$KUBECTL" apply --server-side --field-manager=zhengyun-docs -f - >/dev/null
apiVersion: zhengyun.io/v1alpha1
kind: Bureau
metadata: {name: $bureau}
spec:
  displayName: 区卫生健康委员会
  kind: bureau
  quota: {cpu: "24", memory: 96Gi, storage: 768Gi}
  adminGroups: [$bureau-admins]
YAML

tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
ZHENGYUN_BOOTSTRAP_TOKEN=$admin ZHENGYUN_DATABASE_URL="sqlite://$tmp/zhengyun.db?mode=rwc" \
ZHENGYUN_API_ADDR=127.0.0.1:$port ZHENGYUN_OPERATOR_ADDR=127.0.0.1:$metrics \
ZHENGYUN_LEASE_NAME=zhengyun-docs "$BIN" dev > "$ROOT/target/docs-api.log" 2>&1 &
dev=$!
cleanup() {
  kill -TERM "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  "$KUBECTL" delete environments -l '!nothing' --field-selector "spec.bureau=$bureau" --wait=false >/dev/null 2>&1 || true
  "$KUBECTL" delete bureau "$bureau" --wait=false >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

export ZHENGYUN_API_URL=http://127.0.0.1:$port ZHENGYUN_ADMIN_TOKEN=$admin ZHENGYUN_BUREAU=$bureau
for _ in $(seq 1 120); do ZHENGYUN_TOKEN=$admin "$BIN" whoami >/dev/null 2>&1 && break; sleep 0.5; done
issue() {
  ZHENGYUN_TOKEN=$admin "$BIN" token create "$@" -o json | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p'
}
ZHENGYUN_BUREAU_TOKEN=$(issue --role bureau-admin --for-bureau "$bureau")
ZHENGYUN_AUDITOR_TOKEN=$(issue --role auditor)
ZHENGYUN_FINANCE_TOKEN=$(issue --role finance)
export ZHENGYUN_BUREAU_TOKEN ZHENGYUN_AUDITOR_TOKEN ZHENGYUN_FINANCE_TOKEN
export PATH="$ROOT/target/debug:$ROOT/tests/devcluster/bin:$PATH"

for guide in "${guides[@]}"; do
  echo "== $guide"
  awk '/^```sh$/ {on=1; next} /^```/ {on=0} on' "$guide" > "$tmp/guide.sh"
  if ! (cd "$tmp" && bash -euo pipefail -x "$tmp/guide.sh") > "$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    echo "check-api-guides: a command in $guide failed (above); API log: target/docs-api.log" >&2
    exit 1
  fi
  echo "   $(grep -c '^+ ' "$tmp/out" || true) commands ran"
done

#!/usr/bin/env bash
# Runs the commands of a guide against the cluster in KUBECONFIG, so that they cannot rot:
#   scripts/check-docs.sh [docs/operators.md …]
# Run it through scripts/with-cluster.sh on a fresh cluster (`make docs` does).
#
# Every fenced block marked ```sh is run, in order, by one bash (set -euo pipefail) started in
# the repository's root with tests/devcluster/bin (kubectl) and tools/helm/bin (helm) on PATH.
# Blocks marked ```console or ```text are shown to readers and not run: they need what a
# development machine lacks (an image registry, a database server, a live install to remove).
#
# The devcluster simulates pods without running their containers, so the operator Deployment
# the guide installs never starts. Where a guide says <!-- check-docs: start-operator -->, the
# checker starts target/debug/zhengyun as that Deployment would (its own Lease in
# zhengyun-system) and as the chart's service account (impersonated), so that the guide's
# onboarding converges and the chart's RBAC is shown to be enough: a "forbidden" in the
# operator's log fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?KUBECONFIG must point at a cluster; run this through scripts/with-cluster.sh}"
export PATH="$PWD/tests/devcluster/bin:$PWD/tools/helm/bin:$PATH"
ROOT=$PWD
OPERATOR_SA=system:serviceaccount:zhengyun-system:zhengyun-operator
OPERATOR_LOG=$ROOT/target/docs-operator.log
guides=("$@")
[ ${#guides[@]} -gt 0 ] || guides=(docs/operators.md)
tmp=$(mktemp -d)

cleanup() {
  if [ -f "$tmp/operator.pid" ]; then
    local pid
    pid=$(cat "$tmp/operator.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

[ -x target/debug/zhengyun ] || { echo "target/debug/zhengyun is missing: cargo build -p zhengyun" >&2; exit 1; }

# Starts the operator as the chart's service account; called from the extracted guide.
start_operator() {
  kubectl config view --raw --minify | sed "/^  user:\$/a\\    as: $OPERATOR_SA" > "$tmp/operator.kubeconfig"
  local port
  for port in $(seq 19090 19190); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; done
  mkdir -p "$(dirname "$OPERATOR_LOG")"
  KUBECONFIG="$tmp/operator.kubeconfig" \
    ZHENGYUN_OPERATOR_ADDR="127.0.0.1:$port" \
    ZHENGYUN_LEASE_NAMESPACE=zhengyun-system \
    ZHENGYUN_LEASE_NAME=zhengyun-operator \
    ZHENGYUN_DATABASE_URL="sqlite://$tmp/ledger.db?mode=rwc" \
    ZHENGYUN_LOG=info ZHENGYUN_LOG_FORMAT=json \
    "$ROOT/target/debug/zhengyun" operator >"$OPERATOR_LOG" 2>&1 &
  echo $! > "$tmp/operator.pid"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "(check-docs: the operator runs as $OPERATOR_SA; log: $OPERATOR_LOG)"
      return 0
    fi
    kill -0 "$(cat "$tmp/operator.pid")" 2>/dev/null || break
    sleep 0.2
  done
  echo "the operator did not start; last lines of $OPERATOR_LOG:" >&2
  tail -n 20 "$OPERATOR_LOG" >&2
  return 1
}
export -f start_operator
export tmp OPERATOR_SA OPERATOR_LOG ROOT

# Writes the runnable part of a guide as a script: its ```sh blocks and its markers.
extract() {
  awk -v file="$1" '
    /^<!-- check-docs: start-operator -->$/ { print "start_operator"; next }
    /^```sh[[:space:]]*$/ { inside = 1; printf "echo \"### %s:%d\"\n", file, NR + 1; blocks++; next }
    inside && /^```[[:space:]]*$/ { inside = 0; next }
    inside { print }
    END {
      if (inside) { print "echo \"unterminated block in " file "\" >&2; exit 1" }
      if (!blocks) { print "echo \"no sh blocks in " file "\" >&2; exit 1" }
    }
  ' "$1"
}

passed=0
failed=0
for guide in "${guides[@]}"; do
  extract "$guide" > "$tmp/guide.sh"
  echo "=== $guide: $(grep -c '^echo "### ' "$tmp/guide.sh") blocks"
  if (cd "$ROOT" && PS4='+ ' bash -euo pipefail -x "$tmp/guide.sh"); then
    passed=$((passed + 1))
  else
    echo "FAIL: $guide: the command above failed" >&2
    failed=$((failed + 1))
  fi
done
if [ -f "$OPERATOR_LOG" ] && grep -i "forbidden" "$OPERATOR_LOG" >&2; then
  echo "FAIL: the operator was refused something with the chart's RBAC (lines above, $OPERATOR_LOG)" >&2
  failed=$((failed + 1))
fi
echo "docs: $passed passed, $failed failed"
[ "$failed" = 0 ]

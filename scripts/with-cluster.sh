#!/usr/bin/env bash
# Runs a command with KUBECONFIG pointing at the devcluster, and with the development identity
# provider (scripts/idp.sh) running, its state in IDP_DIR. Starts whichever is not running —
# the provider first, so that a devcluster it starts trusts the provider's tokens — and stops
# what it started when the command ends (whatever its outcome).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DEVCLUSTER_DIR:-.devcluster}
export IDP_DIR=${IDP_DIR:-$PWD/.devcluster/idp}
# A free port unless one is asked for: another checkout's provider may hold the usual one.
export IDP_PORT=${IDP_PORT:-0}
started=0
started_idp=0
if ! scripts/idp.sh status >/dev/null 2>&1; then
  scripts/idp.sh up
  started_idp=1
fi
if ! scripts/cluster.sh status >/dev/null 2>&1; then
  scripts/cluster.sh up
  started=1
fi
cleanup() {
  if [ "$started" = 1 ]; then scripts/cluster.sh down; fi
  if [ "$started_idp" = 1 ]; then scripts/idp.sh down; fi
}
trap cleanup EXIT
export KUBECONFIG="$PWD/$DIR/kubeconfig"
"$@"

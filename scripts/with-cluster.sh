#!/usr/bin/env bash
# Runs a command with KUBECONFIG pointing at the devcluster. Starts one if none is running, and
# stops what it started when the command ends (whatever its outcome).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DEVCLUSTER_DIR:-.devcluster}
started=0
if ! scripts/cluster.sh status >/dev/null 2>&1; then
  scripts/cluster.sh up
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then scripts/cluster.sh down; fi; }
trap cleanup EXIT
export KUBECONFIG="$PWD/$DIR/kubeconfig"
"$@"

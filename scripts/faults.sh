#!/usr/bin/env bash
# The fault suite (`make test-faults`): tests that stop and restart the control plane and the
# database, and kill the operator. They run one at a time on a devcluster and a PostgreSQL of
# their own (in .devcluster-faults, never the shared .devcluster), started here from empty etcd
# data and stopped when the suite ends, whatever its outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEVCLUSTER_DIR=${FAULTS_DEVCLUSTER_DIR:-.devcluster-faults}
export ZHENGYUN_POSTGRES_DIR="$PWD/$DEVCLUSTER_DIR/postgres"
[ "$(basename "$DEVCLUSTER_DIR")" != .devcluster ] || { echo "faults.sh: refusing to use the shared .devcluster" >&2; exit 2; }
cleanup() {
  scripts/postgres.sh down || true
  scripts/cluster.sh down || true
}
trap cleanup EXIT
# A cluster left by an interrupted run is stopped, so that this one starts from empty data.
scripts/cluster.sh down >/dev/null
DEVCLUSTER_ARGS=--fresh scripts/cluster.sh up
export KUBECONFIG="$PWD/$DEVCLUSTER_DIR/kubeconfig"
start=$SECONDS
RUST_BACKTRACE=${RUST_BACKTRACE:-0} cargo test -p zhengyun-e2e --locked --test faults -- --ignored --test-threads=1 --nocapture "$@"
echo "fault suite passed in $((SECONDS - start)) s; process logs in target/faults/"

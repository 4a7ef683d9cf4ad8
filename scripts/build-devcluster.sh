#!/usr/bin/env bash
# Builds tests/devcluster/bin/devcluster (and kubectl, from the same Kubernetes version) when
# their sources are newer than the binaries.
# The first build downloads the Kubernetes modules and compiles them: several minutes.
set -euo pipefail
cd "$(dirname "$0")/../tests/devcluster"
command -v go >/dev/null || { echo "Go is required to build tests/devcluster (see README)" >&2; exit 1; }
if [ -x bin/devcluster ] && [ -x bin/kubectl ] && [ -z "$(find . -name '*.go' -newer bin/devcluster -o -name 'go.*' -newer bin/devcluster | head -1)" ]; then
  exit 0
fi
echo "building tests/devcluster (first build downloads and compiles Kubernetes: expect 10-20 minutes on 2 cores)…"
start=$SECONDS
mkdir -p bin/.tmp
go build -o bin/.tmp/ . k8s.io/kubernetes/cmd/kubectl &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 15
  kill -0 "$pid" 2>/dev/null && echo "  … still compiling ($((SECONDS - start)) s)"
done
wait "$pid"
mv bin/.tmp/devcluster bin/.tmp/kubectl bin/
rmdir bin/.tmp
echo "built tests/devcluster/bin/devcluster and kubectl in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Regenerates the committed, generated files; with --check, fails if any of them drifted.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p manifests/crds
cargo run -q --locked -p zhengyun -- crds > "$tmp/crds.yaml"
if [ "$check" = 1 ]; then
  if ! diff -u manifests/crds/crds.yaml "$tmp/crds.yaml"; then
    echo "manifests/crds/crds.yaml is out of date: run 'make generate' and commit the result" >&2
    exit 1
  fi
  echo "generated files are up to date"
else
  cp "$tmp/crds.yaml" manifests/crds/crds.yaml
  echo "wrote manifests/crds/crds.yaml"
fi

#!/usr/bin/env bash
# Regenerates the committed, generated files; with --check, fails if any of them drifted.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p manifests/crds openapi
cargo run -q --locked -p zhengyun -- crds > "$tmp/crds.yaml"
cargo run -q --locked -p zhengyun -- openapi > "$tmp/openapi.json"
python3 scripts/tenants-to-bureaus.py data/tenants-haidian.yaml > "$tmp/bureaus-haidian.yaml"

# generated file → committed path
declare -A files=(
  [crds.yaml]=manifests/crds/crds.yaml
  [openapi.json]=openapi/openapi.json
  [bureaus-haidian.yaml]=manifests/samples/bureaus-haidian.yaml
)
stale=0
for name in "${!files[@]}"; do
  target=${files[$name]}
  if [ "$check" = 1 ]; then
    if ! diff -u "$target" "$tmp/$name" >/dev/null 2>&1; then
      diff -u "$target" "$tmp/$name" | head -40 || true
      echo "$target is out of date: run 'make generate' and commit the result" >&2
      stale=1
    fi
  else
    cp "$tmp/$name" "$target"
    echo "wrote $target"
  fi
done
[ "$stale" = 0 ] || exit 1
[ "$check" = 1 ] && echo "generated files are up to date"
exit 0

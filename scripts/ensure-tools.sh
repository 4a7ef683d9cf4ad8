#!/usr/bin/env bash
# Checks (and where it can, installs) what `make test` and `make run` need.
set -euo pipefail
need_go="1.26"
if ! command -v go >/dev/null; then
  echo "Go $need_go or newer is required for tests/devcluster; install it from your distribution or go.dev" >&2
  exit 1
fi
if ! command -v cargo >/dev/null; then
  echo "Rust (cargo) is required; install it with rustup" >&2
  exit 1
fi
for comp in rustfmt clippy; do
  if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then rustup component add "$comp"; else echo "cargo $comp missing" >&2; exit 1; fi
  fi
done

#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECONDS (default 20) each: a smoke run for CI.
# By hand, run one for longer with AddressSanitizer: cargo +nightly fuzz run specs
#
# cargo-fuzz is installed from crates.io when missing. Without a nightly toolchain the targets
# are built by the default toolchain with RUSTC_BOOTSTRAP=1 and no sanitizer (the code under test
# forbids `unsafe`, so what the fuzzers look for is panics, which need no sanitizer).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
seconds=${FUZZ_SECONDS:-20}
args=(--sanitizer none)
toolchain=()
if rustup toolchain list 2>/dev/null | grep '^nightly' >/dev/null; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
targets=$(cargo "${toolchain[@]}" fuzz list)
for target in $targets; do
  work=$(mktemp -d)
  cp -r "corpus/$target/." "$work/" 2>/dev/null || true
  echo "fuzzing $target for ${seconds} s"
  status=0
  cargo "${toolchain[@]}" fuzz run "${args[@]}" "$target" "$work" -- \
    -max_total_time="$seconds" -print_final_stats=1 > "$work.log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|new_units_added)|panicked|ERROR|SUMMARY" "$work.log" || true
  [ "$status" = 0 ] || tail -40 "$work.log" >&2
  rm -rf "$work" "$work.log"
  if [ "$status" != 0 ]; then
    echo "fuzz target $target failed; the crashing input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
done

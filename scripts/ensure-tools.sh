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
# promtool (from Debian's prometheus package) checks the operator's /metrics exposition in the
# end-to-end tests and the chart's budget alert rules (scripts/check-chart.sh). Only the package's files are needed: its Prometheus server is not started.
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing promtool (Debian's prometheus package)…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package enables and starts its server where an init system runs; tests need only promtool.
    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    echo "promtool is required (as root: apt-get install prometheus, or install it from prometheus.io)" >&2
    exit 1
  fi
fi
# Headless Chromium and its ChromeDriver (Debian's chromium and chromium-driver) drive the
# console's browser tests; fonts-noto-cjk draws its Chinese (without it, empty boxes).
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing Chromium, ChromeDriver and the Noto CJK fonts (Debian's packages)…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-noto-cjk >/dev/null
  else
    echo "Chromium, ChromeDriver and CJK fonts are required for the console's tests (as root: apt-get install chromium chromium-driver fonts-noto-cjk)" >&2
    exit 1
  fi
fi

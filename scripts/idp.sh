#!/usr/bin/env bash
# The development OpenID Connect provider, standing in for the district's single sign-on:
# `scripts/idp.sh up|down|url|ca|status`.
#
# `up` builds zhengyun-devidp and starts it in the background on 127.0.0.1:${IDP_PORT:-5556}
# with its state in ${IDP_DIR:-.devcluster/idp}: the test authority (ca.crt), the serving
# certificate (tls.crt, tls.key), the signing keys (keys/), the issuer URL (issuer), its log
# (idp.log) and its pid (pid). The users come from ${IDP_USERS:-tests/devidp/users.yaml}. It
# returns once the discovery document answers over TLS verified with ca.crt (30 s at most), and
# does nothing if the provider is already running. The authority and the keys are made on the
# first start and reused afterwards, so clients configured with ca.crt keep working.
# `down` stops it (SIGTERM, then waits). `url` prints the issuer URL; `ca` the path of ca.crt.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${IDP_DIR:-.devcluster/idp}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PORT=${IDP_PORT:-5556}
USERS=${IDP_USERS:-tests/devidp/users.yaml}
LOG="$DIR/idp.log"
BIN=${CARGO_TARGET_DIR:-target}/debug/zhengyun-devidp
WAIT_SECONDS=30

die() { echo "idp.sh: $*" >&2; exit 1; }

running_pid() {
  [ -f "$DIR/pid" ] || return 1
  local pid
  pid=$(cat "$DIR/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa zhengyun-devidp "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

issuer() { cat "$DIR/issuer"; }

answers() {
  [ -s "$DIR/issuer" ] && [ -s "$DIR/ca.crt" ] \
    && curl -fsS --max-time 2 --cacert "$DIR/ca.crt" "$(issuer)/.well-known/openid-configuration" >/dev/null 2>&1
}

up() {
  if pid=$(running_pid); then
    echo "identity provider already running (pid $pid): $(issuer)"
    return 0
  fi
  command -v curl >/dev/null || die "curl is needed to check that the provider answers"
  cargo build -q --locked -p zhengyun-devidp
  rm -f "$DIR/pid" "$DIR/issuer"
  # Its own session, so a Ctrl-C meant for the shell that ran `up` leaves it running.
  setsid "$BIN" --state-dir "$DIR" --addr "127.0.0.1:$PORT" --users "$USERS" </dev/null >>"$LOG" 2>&1 &
  local pid=$!
  echo "$pid" >"$DIR/pid"
  local deadline=$((SECONDS + WAIT_SECONDS))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$DIR/pid"
      tail -n 20 "$LOG" >&2
      die "the identity provider exited; see $LOG"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      rm -f "$DIR/pid"
      tail -n 20 "$LOG" >&2
      die "the identity provider did not answer within $WAIT_SECONDS s; see $LOG"
    fi
    sleep 0.2
  done
  echo "identity provider running (pid $pid): $(issuer) (CA: $DIR/ca.crt)"
}

down() {
  local pid
  if ! pid=$(running_pid); then
    echo "no identity provider running in $DIR"
    rm -f "$DIR/pid" "$DIR/issuer"
    return 0
  fi
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 100 ]; then
      echo "idp.sh: the identity provider did not stop within 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$DIR/pid" "$DIR/issuer"
  echo "identity provider stopped"
}

require_running() {
  running_pid >/dev/null || die "the identity provider is not running; start it with: scripts/idp.sh up"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  url) require_running; issuer ;;
  ca) echo "$DIR/ca.crt" ;;
  status) if pid=$(running_pid); then echo "running (pid $pid): $(issuer)"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 up|down|url|ca|status" >&2; exit 2 ;;
esac

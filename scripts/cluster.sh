#!/usr/bin/env bash
# Starts or stops the local devcluster: `scripts/cluster.sh up|down|status`.
# `up` builds the binary if needed, starts it in the background, waits for "ready" and records
# the pid in .devcluster/pid; it does nothing if one is already running.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DEVCLUSTER_DIR:-.devcluster}
BIN=tests/devcluster/bin/devcluster
LOG="$DIR/devcluster.log"

IDP_DIR=${IDP_DIR:-.devcluster/idp}

# The API server's structured authentication for the development identity provider
# (scripts/idp.sh), when it has started: its tokens (audience zhengyun) sign in as
# oidc:<subject>, and its groups zhengyun:<bureau>:bureau-admin and …:bureau-viewer become the
# groups the bureaus' adminGroups and viewerGroups name by convention, <bureau>-admins and
# <bureau>-viewers. Prints the flag to pass, or nothing.
authentication_config() {
  [ -s "$IDP_DIR/issuer" ] && [ -s "$IDP_DIR/ca.crt" ] || return 0
  local file="$DIR/authentication.yaml"
  {
    echo "apiVersion: apiserver.config.k8s.io/v1"
    echo "kind: AuthenticationConfiguration"
    echo "jwt:"
    echo "  - issuer:"
    echo "      url: $(cat "$IDP_DIR/issuer")"
    echo "      audiences: [zhengyun]"
    echo "      certificateAuthority: |"
    sed 's/^/        /' "$IDP_DIR/ca.crt"
    echo "    claimMappings:"
    echo "      username: {claim: sub, prefix: 'oidc:'}"
    echo "      groups:"
    echo "        expression: >-"
    echo "          (has(claims.groups) ? dyn(claims.groups) : dyn([])).filter(g, g.matches('^zhengyun:[a-z0-9-]+:bureau-(admin|viewer)\$'))"
    echo "          .map(g, g.split(':')[1] + (g.endsWith(':bureau-admin') ? '-admins' : '-viewers'))"
  } > "$file.tmp"
  mv "$file.tmp" "$file"
  echo "--authentication-config=$file"
}

running_pid() {
  [ -f "$DIR/pid" ] || return 1
  local pid
  pid=$(cat "$DIR/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q devcluster "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

up() {
  if pid=$(running_pid); then
    echo "devcluster already running (pid $pid); kubeconfig: $DIR/kubeconfig"
    return 0
  fi
  scripts/build-devcluster.sh
  mkdir -p "$DIR"
  echo "starting devcluster (etcd, kube-apiserver, controller-manager, scheduler, ${DEVCLUSTER_NODES:-3} simulated nodes)…"
  local start=$SECONDS
  # Emptied here, not only by the redirection below: that happens in the background, and until
  # it does the previous run's "ready" would end the wait at once.
  : >"$LOG"
  local authentication
  authentication=$(authentication_config)
  # shellcheck disable=SC2086
  setsid "$BIN" --dir "$DIR" --nodes "${DEVCLUSTER_NODES:-3}" ${DEVCLUSTER_ARGS:-} $authentication >"$LOG" 2>&1 < /dev/null &
  local pid=$!
  while ! grep -qx ready "$LOG" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "devcluster exited before it was ready; last lines of $LOG:" >&2
      tail -n 20 "$LOG" >&2
      return 1
    fi
    if (( SECONDS - start > 300 )); then
      echo "devcluster not ready after 300 s; see $LOG" >&2
      kill "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
  echo "devcluster ready in $((SECONDS - start)) s (pid $pid); KUBECONFIG=$PWD/$DIR/kubeconfig"
}

down() {
  local pid
  if ! pid=$(running_pid); then
    echo "no devcluster running"
    rm -f "$DIR/pid"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { echo "devcluster stopped (pid $pid)"; return 0; }
    sleep 0.2
  done
  echo "devcluster did not stop within 20 s; killing pid $pid" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DIR/pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if pid=$(running_pid); then echo "running (pid $pid)"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throwaway PostgreSQL for the store tests: `scripts/postgres.sh up|down|url|status`.
#
# `up` installs Debian's `postgresql` package if no initdb is found (as root, with apt-get),
# creates a cluster in .devcluster/postgres/data (trust authentication, listening on 127.0.0.1
# only, durability off because the data is disposable), starts it on port 55432 or the next free
# one, creates the database `zhengyun` and records the port in .devcluster/postgres/port and the
# pid in .devcluster/postgres/pid. It does nothing if the cluster is already running.
# The server speaks TLS with a certificate for 127.0.0.1 from a test authority made once in
# .devcluster/postgres/tls (with openssl), next to a second, untrusted authority for tests that
# must see verification fail.
# `url` prints postgres://postgres@127.0.0.1:PORT/zhengyun; `tls-url` the same URL verifying the
# server (sslmode=verify-full, sslrootcert=the test authority) for ZHENGYUN_TEST_POSTGRES_URL;
# `untrusted-ca` the path of the other authority's certificate.
# `create-database NAME` creates an empty database and prints its `tls-url`; `drop-database NAME`
# drops it (for benchmarks that want a database of their own).
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` OS user
# (created by the package) and every server command runs through `runuser -u postgres --`.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${ZHENGYUN_POSTGRES_DIR:-.devcluster/postgres}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
DATA="$DIR/data"
LOG="$DIR/postgres.log"
FIRST_PORT=${ZHENGYUN_POSTGRES_PORT:-55432}
DATABASE=zhengyun

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

install_postgres() {
  [ "$(id -u)" -eq 0 ] || die "initdb not found under /usr/lib/postgresql/*/bin; install Debian's postgresql package (as root: apt-get install postgresql)"
  echo "installing PostgreSQL from Debian's packages…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

# Runs a server command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local port
  for port in $(seq "$FIRST_PORT" $((FIRST_PORT + 100))); do
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  die "no free port in $FIRST_PORT..$((FIRST_PORT + 100))"
}

running_pid() {
  [ -f "$DATA/postmaster.pid" ] && [ -f "$DIR/port" ] || return 1
  local pid
  pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

url() { echo "postgres://postgres@127.0.0.1:$(cat "$DIR/port")/$DATABASE"; }

init_cluster() {
  local bin=$1
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "the postgres OS user is missing; reinstall the postgresql package"
    chown postgres: "$DIR"
    runuser -u postgres -- test -x "$DIR" || die "user postgres cannot reach $DIR; make its parent directories searchable (chmod o+x) or set ZHENGYUN_POSTGRES_DIR"
  fi
  echo "creating a PostgreSQL cluster in $DATA…"
  as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
}

TLS="$DIR/tls"

tls_url() { echo "$(url)?sslmode=verify-full&sslrootcert=$TLS/ca.crt"; }

# A test certificate authority, a server certificate for 127.0.0.1 signed by it, and a second
# authority that signed nothing here; made once, valid for ten years.
make_certificates() {
  [ -s "$TLS/server.crt" ] && [ -s "$TLS/untrusted.crt" ] && return 0
  command -v openssl >/dev/null || die "openssl is needed for the test server's certificate"
  mkdir -p "$TLS"
  local ca_ext=(-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign")
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Zhengyun test authority" \
    "${ca_ext[@]}" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Untrusted test authority" \
    "${ca_ext[@]}" -keyout "$TLS/untrusted.key" -out "$TLS/untrusted.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > "$TLS/server.ext"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 3650 -extfile "$TLS/server.ext" -out "$TLS/server.crt" 2>/dev/null
  chmod 600 "$TLS/server.key"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$TLS/server.key" "$TLS/server.crt"
}

up() {
  if pid=$(running_pid); then
    echo "PostgreSQL already running (pid $pid): $(url)"
    return 0
  fi
  local bin
  bin=$(find_bin) || { install_postgres; bin=$(find_bin) || die "initdb still not found after installing postgresql"; }
  [ -f "$DATA/PG_VERSION" ] || init_cluster "$bin"
  make_certificates
  local port
  port=$(free_port)
  [ "$(id -u)" -ne 0 ] || { touch "$LOG"; chown postgres: "$LOG"; }
  # No Unix socket (its default directory may not exist or be writable); tests use TCP.
  # fsync and friends are off: this cluster holds nothing worth keeping across a power cut.
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c ssl=on -c ssl_cert_file='$TLS/server.crt' -c ssl_key_file='$TLS/server.key'" \
    >/dev/null || { tail -n 20 "$LOG" >&2; die "PostgreSQL did not start; see $LOG"; }
  echo "$port" >"$DIR/port"
  head -n 1 "$DATA/postmaster.pid" >"$DIR/pid"
  local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]; then
    "${psql[@]}" -c "CREATE DATABASE $DATABASE" >/dev/null
  fi
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') running (pid $(cat "$DIR/pid")): $(url)"
}

down() {
  if ! running_pid >/dev/null; then
    echo "no PostgreSQL running in $DATA"
    rm -f "$DIR/pid" "$DIR/port"
    return 0
  fi
  local bin
  bin=$(find_bin) || die "pg_ctl not found"
  as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
  rm -f "$DIR/pid" "$DIR/port"
  echo "PostgreSQL stopped"
}

psql_admin() {
  local bin
  bin=$(find_bin) || die "psql not found"
  running_pid >/dev/null || die "PostgreSQL is not running; start it with: scripts/postgres.sh up"
  "$bin/psql" -h 127.0.0.1 -p "$(cat "$DIR/port")" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

database_name() {
  [[ "${1:-}" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database names here are lowercase letters, digits and _: ${1:-}"
  echo "$1"
}

case "${1:-}" in
  create-database)
    name=$(database_name "${2:-}")
    psql_admin -c "CREATE DATABASE $name" >/dev/null
    DATABASE=$name tls_url ;;
  drop-database)
    name=$(database_name "${2:-}")
    psql_admin -c "DROP DATABASE IF EXISTS $name" >/dev/null ;;
  up) up ;;
  down) down ;;
  url) running_pid >/dev/null || die "PostgreSQL is not running; start it with: scripts/postgres.sh up"; url ;;
  tls-url) running_pid >/dev/null || die "PostgreSQL is not running; start it with: scripts/postgres.sh up"; tls_url ;;
  untrusted-ca) echo "$TLS/untrusted.crt" ;;
  status) if pid=$(running_pid); then echo "running (pid $pid): $(url)"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 up|down|url|tls-url|untrusted-ca|status|create-database NAME|drop-database NAME" >&2; exit 2 ;;
esac

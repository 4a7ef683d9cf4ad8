#!/usr/bin/env bash
# `make run`: a working Zhengyun on this machine in one command.
#
# Builds and starts the devcluster (or, with ZHENGYUN_USE_EXISTING_CLUSTER=1, uses the cluster in
# KUBECONFIG), installs the CRDs, a capacity pool, a rate card and the Haidian sample tenants,
# starts `zhengyun dev` (API + operator), and prints how to use it. The same values go to
# $ZHENGYUN_RUN_DIR/run.env (default .devcluster/run.env) for `source`. Ctrl-C stops everything
# this script started.
#
# Settings (environment): ZHENGYUN_API_ADDR (127.0.0.1:8080), ZHENGYUN_OPERATOR_ADDR
# (127.0.0.1:9090), ZHENGYUN_RUN_BUREAU (wjw), ZHENGYUN_RUN_DIR (.devcluster).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN_DIR=${ZHENGYUN_RUN_DIR:-$ROOT/.devcluster}
API_ADDR=${ZHENGYUN_API_ADDR:-127.0.0.1:8080}
OPERATOR_ADDR=${ZHENGYUN_OPERATOR_ADDR:-127.0.0.1:9090}
BUREAU=${ZHENGYUN_RUN_BUREAU:-wjw}
API_URL="http://$API_ADDR"
BIN=$ROOT/target/debug/zhengyun

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'make run: %s\n' "$*" >&2; exit 1; }

started_cluster=0
started_idp=0
dev_pid=
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
    step "Stopping zhengyun dev"
    kill -TERM "$dev_pid" 2>/dev/null || true
    wait "$dev_pid" 2>/dev/null || true
  fi
  if [ "$started_cluster" = 1 ]; then
    step "Stopping the devcluster"
    scripts/cluster.sh down || true
  fi
  if [ "$started_idp" = 1 ]; then
    step "Stopping the identity provider"
    scripts/idp.sh down || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$RUN_DIR"
# The development identity provider first: a devcluster started after it trusts its tokens.
export IDP_DIR=${IDP_DIR:-$ROOT/.devcluster/idp}
step "Starting the development identity provider (sign-in as the sample tenants' staff)"
if ! scripts/idp.sh status >/dev/null 2>&1; then
  scripts/idp.sh up
  started_idp=1
else
  echo "already running: $(scripts/idp.sh url)"
fi
IDP_URL=$(scripts/idp.sh url)
IDP_CA=$(scripts/idp.sh ca)
cat > "$RUN_DIR/oidc.yaml" <<EOF
issuers:
  - issuer: $IDP_URL
    audiences: [zhengyun]
    displayName: 海淀区统一身份认证（开发）
    caFile: $IDP_CA
EOF
if [ "${ZHENGYUN_USE_EXISTING_CLUSTER:-}" = 1 ]; then
  : "${KUBECONFIG:?ZHENGYUN_USE_EXISTING_CLUSTER=1 needs KUBECONFIG}"
  step "Using the existing cluster in $KUBECONFIG"
  scripts/build-devcluster.sh # for kubectl of the same version
else
  step "Building the devcluster (the first build compiles Kubernetes from source: many minutes; progress below)"
  scripts/build-devcluster.sh
  step "Starting the devcluster"
  if ! scripts/cluster.sh status >/dev/null 2>&1; then
    scripts/cluster.sh up
    started_cluster=1
  else
    echo "already running"
  fi
  export KUBECONFIG=$ROOT/.devcluster/kubeconfig
fi
KUBECTL=$ROOT/tests/devcluster/bin/kubectl

step "Building zhengyun (the first build compiles every dependency: a few minutes)"
cargo build --locked -p zhengyun

step "Installing the CRDs and the tenant policies"
"$BIN" crds | "$KUBECTL" apply --server-side --field-manager=zhengyun-run -f - >/dev/null
"$BIN" policies | "$KUBECTL" apply --server-side --force-conflicts --field-manager=zhengyun-run -f - >/dev/null
"$KUBECTL" wait --for condition=established --timeout=60s \
  crd/bureaus.zhengyun.io crd/environments.zhengyun.io crd/capacitypools.zhengyun.io crd/ratecards.zhengyun.io >/dev/null
# Samples (a capacity pool, a rate card, 71 tenants) go onto a cluster of someone else's only when
# asked for: ZHENGYUN_INSTALL_SAMPLES=1.
if [ "${ZHENGYUN_USE_EXISTING_CLUSTER:-}" = 1 ] && [ "${ZHENGYUN_INSTALL_SAMPLES:-}" != 1 ]; then
  echo "an existing cluster: no sample capacity pool, rate card or tenants (ZHENGYUN_INSTALL_SAMPLES=1 installs them)"
else
step "Installing a capacity pool, a rate card and the Haidian sample tenants"
"$KUBECTL" apply --server-side --field-manager=zhengyun-run \
  -f manifests/samples/capacitypool.yaml -f manifests/samples/ratecard-2026.yaml >/dev/null
# Create the sample bureaus that are missing; leave existing ones (and quotas changed since) alone.
if ! out=$("$KUBECTL" create -f manifests/samples/bureaus-haidian.yaml 2>&1); then
  # `grep … >/dev/null`, not `grep -q`: it reads to the end, so no writer dies of SIGPIPE under pipefail.
  if printf '%s\n' "$out" | grep -v -e AlreadyExists -e '^bureau.zhengyun.io/.* created$' | grep . >/dev/null; then
    printf '%s\n' "$out" >&2
    die "could not create the sample bureaus"
  fi
fi
fi
echo "$("$KUBECTL" get bureaus --no-headers | wc -l) bureaus onboarded"

step "Starting zhengyun dev (API on $API_URL, operator metrics on http://$OPERATOR_ADDR/metrics)"
token_file=$RUN_DIR/admin-token
# A bootstrap token expires 90 days after it was first registered: a new secret well before then
# renews it (the API replaces the old one), so a long-lived development database keeps working.
if [ -n "$(find "$token_file" -mtime +60 2>/dev/null)" ]; then
  rm -f "$token_file"
fi
if [ ! -s "$token_file" ]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token_file")
fi
ADMIN_TOKEN=$(cat "$token_file")
ZHENGYUN_BOOTSTRAP_TOKEN=$ADMIN_TOKEN \
ZHENGYUN_DATABASE_URL="sqlite://$RUN_DIR/zhengyun.db?mode=rwc" \
ZHENGYUN_API_ADDR=$API_ADDR \
ZHENGYUN_OPERATOR_ADDR=$OPERATOR_ADDR \
ZHENGYUN_OIDC_CONFIG=$RUN_DIR/oidc.yaml \
  "$BIN" dev > "$RUN_DIR/zhengyun-dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do
  kill -0 "$dev_pid" 2>/dev/null || { tail -20 "$RUN_DIR/zhengyun-dev.log" >&2; die "zhengyun dev exited"; }
  if ZHENGYUN_API_URL=$API_URL ZHENGYUN_TOKEN=$ADMIN_TOKEN "$BIN" whoami >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
ZHENGYUN_API_URL=$API_URL ZHENGYUN_TOKEN=$ADMIN_TOKEN "$BIN" whoami >/dev/null || die "the API did not answer on $API_URL"

issued=$(ZHENGYUN_API_URL=$API_URL ZHENGYUN_TOKEN=$ADMIN_TOKEN "$BIN" token create \
  --role bureau-admin --for-bureau "$BUREAU" --description "make run" -o json)
BUREAU_TOKEN=$(printf '%s' "$issued" | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
[ -n "$BUREAU_TOKEN" ] || die "could not issue a bureau token: $issued"

cat > "$RUN_DIR/run.env" <<EOF
export ZHENGYUN_API_URL=$API_URL
export ZHENGYUN_ADMIN_TOKEN=$ADMIN_TOKEN
export ZHENGYUN_BUREAU=$BUREAU
export ZHENGYUN_BUREAU_TOKEN=$BUREAU_TOKEN
export KUBECONFIG=$KUBECONFIG
export ZHENGYUN_CA_FILE=$IDP_CA
EOF
chmod 600 "$RUN_DIR/run.env"

cat <<EOF

Zhengyun is running.
  API                    $API_URL   (OpenAPI: $API_URL/api/v1/openapi.json)
  console                $API_URL/console   (sign in with a token below, or the identity provider)
  platform-admin token   $ADMIN_TOKEN
  bureau                 $BUREAU ($("$KUBECTL" get bureau "$BUREAU" -o jsonpath='{.spec.displayName}'))
  bureau-admin token     $BUREAU_TOKEN
  KUBECONFIG             $KUBECONFIG
  log                    $RUN_DIR/zhengyun-dev.log

In another shell (the same values are in $RUN_DIR/run.env):
  source $RUN_DIR/run.env; export ZHENGYUN_TOKEN=\$ZHENGYUN_BUREAU_TOKEN
  $BIN env request dev --cpu 2 --memory 4Gi
  $BIN env list
  $BIN statement

Or sign in as a person, with the development identity provider ($IDP_URL):
  source $RUN_DIR/run.env; unset ZHENGYUN_TOKEN
  $BIN login --device        # open the address it prints; user zhangwei (张伟, 卫健委 admin),
                             # password zhengyun-dev; lina is 卫健委's viewer, liuyang a platform
                             # admin, chenjing finance, zhaolei an auditor; every sample
                             # tenant has an admin and a viewer in tests/devidp/users.yaml
  $BIN whoami
  $BIN env kubeconfig $BUREAU-dev > $BUREAU-dev.kubeconfig   # kubectl in one namespace, until
                             # the sign-in ends (an hour here): a kubeconfig never outlives it

Press Ctrl-C to stop.
EOF
wait "$dev_pid"

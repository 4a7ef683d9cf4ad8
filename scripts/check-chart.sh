#!/usr/bin/env bash
# Checks helm/zhengyun and manifests/deploy/ against the cluster in KUBECONFIG (run it through
# scripts/with-cluster.sh; it expects a cluster without a Zhengyun installation):
#  1. `helm lint --strict` with the default values and with every optional part turned on; the
#     budget and availability alert rules checked and unit-tested with promtool;
#  2. server-side dry-runs of the chart (defaults, and production-like values) and of
#     manifests/deploy/, in a namespace enforcing Pod Security "restricted", without warnings;
#  3. least privilege: applies the chart's service accounts and roles for real, asks the API
#     server what each service account may do (`kubectl auth can-i --as`), and tries the writes
#     that RBAC guards against escalation (binding and writing tenant roles) as the operator;
#  4. removes everything it created but the CRDs.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?KUBECONFIG must point at a cluster; run this through scripts/with-cluster.sh}"
export PATH="$PWD/tests/devcluster/bin:$PWD/tools/helm/bin:$PATH"
NS=zhengyun-system
RELEASE=zhengyun
CHART=helm/zhengyun
SCRATCH=zhengyun-rbac-check
FOREIGN=zhengyun-rbac-foreign
OPERATOR=system:serviceaccount:$NS:zhengyun-operator
API=system:serviceaccount:$NS:zhengyun-api
tmp=$(mktemp -d)
failures=0
passed=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { passed=$((passed + 1)); }
step() { echo "--- $*"; }

cleanup() {
  if [ -f "$tmp/rbac.yaml" ]; then kubectl delete --ignore-not-found -f "$tmp/rbac.yaml" >/dev/null 2>&1 || true; fi
  kubectl delete namespace "$SCRATCH" "$FOREIGN" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  if [ -f "$tmp/created-namespace" ]; then kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Values a production install would set: an existing database Secret, a bootstrap token, narrowed
# network policies, other replica counts (one API replica: no PodDisruptionBudget for it).
production=(
  --set database.existingSecret=zhengyun-db --set database.existingSecretKey=postgres-url
  --set bootstrapToken.value=check-token
  --set operator.replicas=3 --set api.replicas=1
  --set 'networkPolicy.kubeApiServer.cidrs={10.96.0.1/32,192.168.0.10/32}'
  --set-json 'networkPolicy.database.to=[{"ipBlock":{"cidr":"10.20.0.0/16"}}]'
  --set-json 'networkPolicy.apiFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"ingress"}}}]'
  --set image.tag=0.1.0-test --set image.pullPolicy=Always
  --set api.kubeconfigs.server=https://k8s.haidian.gov.cn:6443 --set api.kubeconfigs.lifetime=4h
  --set api.tls.secretName=zhengyun-api-tls
  --set-json 'api.oidc.issuers=[{"issuer":"https://sso.haidian.gov.cn","audiences":["zhengyun"],"displayName":"海淀区统一身份认证"}]'
  --set-json 'api.oidc.to=[{"ipBlock":{"cidr":"10.30.0.0/16"}}]'
  --set api.ingress.enabled=true --set api.ingress.className=nginx --set api.ingress.tlsSecretName=zhengyun-web-tls
)

step "helm lint"
helm lint --strict "$CHART" || fail "helm lint with the default values"
helm lint --strict "$CHART" "${production[@]}" --set serviceMonitor.enabled=true \
  --set prometheusRule.enabled=true \
  --set database.url=postgres://zhengyun@db:5432/zhengyun --set namespace.create=true \
  || fail "helm lint with every optional part on"
monitors=$(helm template "$RELEASE" "$CHART" -n "$NS" --set serviceMonitor.enabled=true | grep -c '^kind: ServiceMonitor' || true)
[ "$monitors" = 2 ] && ok || fail "serviceMonitor.enabled=true renders $monitors ServiceMonitors, expected 2"
monitors=$(helm template "$RELEASE" "$CHART" -n "$NS" | grep -c '^kind: ServiceMonitor' || true)
[ "$monitors" = 0 ] && ok || fail "ServiceMonitors are rendered although serviceMonitor.enabled is false"

step "budget and availability alert rules (promtool)"
rules=$(helm template "$RELEASE" "$CHART" -n "$NS" --set prometheusRule.enabled=true | grep -c '^kind: PrometheusRule' || true)
[ "$rules" = 1 ] && ok || fail "prometheusRule.enabled=true renders $rules PrometheusRules, expected 1"
rules=$(helm template "$RELEASE" "$CHART" -n "$NS" | grep -c '^kind: PrometheusRule' || true)
[ "$rules" = 0 ] && ok || fail "a PrometheusRule is rendered although prometheusRule.enabled is false"
# The rendered rule's spec is the rule file promtool checks and tests.
helm template "$RELEASE" "$CHART" -n "$NS" --set prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml | sed -n '/^spec:$/,$p' | sed '1d; s/^  //' >"$tmp/rendered-rules.yaml"
diff -q "$tmp/rendered-rules.yaml" helm/zhengyun/files/budget-alerts.yaml >/dev/null \
  && ok || fail "the rendered PrometheusRule's spec differs from helm/zhengyun/files/budget-alerts.yaml"
promtool check rules "$tmp/rendered-rules.yaml" >/dev/null && ok || fail "promtool check rules on the rendered PrometheusRule"
promtool test rules tests/alerts/budget-alerts.test.yaml && ok || fail "promtool test rules tests/alerts/budget-alerts.test.yaml"
promtool test rules tests/alerts/availability-alerts.test.yaml && ok \
  || fail "promtool test rules tests/alerts/availability-alerts.test.yaml"

step "the release namespace, enforcing Pod Security \"restricted\""
for ns in "$NS" "$SCRATCH"; do
  # Left by an earlier run that was stopped while its namespaces were being deleted.
  if [ "$(kubectl get namespace "$ns" -o jsonpath='{.status.phase}' 2>/dev/null)" = Terminating ]; then
    kubectl wait --for=delete "namespace/$ns" --timeout=120s >/dev/null
  fi
done
if ! kubectl get namespace "$NS" >/dev/null 2>&1; then
  helm template "$RELEASE" "$CHART" -n "$NS" --set namespace.create=true --show-only templates/namespace.yaml \
    | kubectl apply --server-side -f - >/dev/null
  touch "$tmp/created-namespace"
fi

# Runs a server-side dry-run of the YAML on stdin; fails on an error or a Pod Security warning.
dry_run() {
  local what=$1
  if ! kubectl apply --server-side --dry-run=server -f - >"$tmp/out" 2>"$tmp/err"; then
    cat "$tmp/out" "$tmp/err" >&2
    fail "server-side dry-run of $what"
  elif grep -i "podsecurity" "$tmp/err" >&2; then
    fail "$what would violate Pod Security \"restricted\""
  else
    ok
    echo "$what: $(grep -c 'serverside-applied (server dry run)' "$tmp/out") objects accepted"
  fi
}

step "server-side dry-runs"
helm template "$RELEASE" "$CHART" -n "$NS" --include-crds | dry_run "the chart with its defaults"
helm template "$RELEASE" "$CHART" -n "$NS" --include-crds "${production[@]}" | dry_run "the chart with production values"
cat manifests/deploy/*.yaml | dry_run "manifests/deploy/"

step "RBAC, applied for real"
# Resource names in RBAC checks resolve through discovery: the CRDs must be served. They are
# left installed, as `make test`'s other checks install them too.
kubectl apply --server-side -f manifests/crds/crds.yaml >/dev/null
kubectl wait --for condition=established --timeout=60s \
  crd/bureaus.zhengyun.io crd/environments.zhengyun.io crd/capacitypools.zhengyun.io crd/ratecards.zhengyun.io >/dev/null
helm template "$RELEASE" "$CHART" -n "$NS" \
  --show-only templates/serviceaccounts.yaml --show-only templates/rbac-operator.yaml \
  --show-only templates/rbac-api.yaml --show-only templates/operator-scope.yaml \
  --show-only templates/api-scope.yaml \
  --show-only templates/tenant-policies.yaml > "$tmp/rbac.yaml"
kubectl apply --server-side -f "$tmp/rbac.yaml" >/dev/null
# A namespace as the operator makes it (its label), and one it did not make.
kubectl create namespace "$SCRATCH" >/dev/null
kubectl label namespace "$SCRATCH" app.kubernetes.io/managed-by=zhengyun >/dev/null
kubectl create namespace "$FOREIGN" >/dev/null
# The operator-scope policy is enforced once the API server has loaded it: wait for a refusal.
for _ in $(seq 1 60); do
  if ! kubectl create rolebinding probe --clusterrole=zhengyun-tenant-admin --group=g -n "$FOREIGN" \
    --as="$OPERATOR" --dry-run=server >/dev/null 2>&1; then break; fi
  sleep 0.5
done
# And the api-scope policy: a Secret of any other kind is refused once it is loaded.
for _ in $(seq 1 60); do
  if ! kubectl create secret generic probe --from-literal=a=b -n "$SCRATCH" \
    --as="$API" --dry-run=server >/dev/null 2>&1; then break; fi
  sleep 0.5
done

# expect WHO yes|no VERB RESOURCE [flags…]: asks the API server whether WHO may do it.
expect() {
  local who=$1 want=$2
  shift 2
  local got
  got=$(kubectl auth can-i --as="$who" "$@" 2>/dev/null || true)
  if [ "$got" = "$want" ]; then ok; else fail "${who##*:} can-i $*: $got, expected $want"; fi
}

# What the operator does (crates/zhengyun-operator) and nothing more.
while read -r want verb resource flags; do
  # shellcheck disable=SC2086
  expect "$OPERATOR" "$want" "$verb" "$resource" $flags
done <<'EOF'
yes watch bureaus.zhengyun.io
yes list environments.zhengyun.io
yes get capacitypools.zhengyun.io/default
yes watch ratecards.zhengyun.io
yes patch environments.zhengyun.io/wjw-prod
yes patch environments.zhengyun.io --subresource=status
yes patch bureaus.zhengyun.io --subresource=status
yes update environments.zhengyun.io --subresource=finalizers
no  create bureaus.zhengyun.io
yes delete environments.zhengyun.io
no  patch capacitypools.zhengyun.io
no  patch ratecards.zhengyun.io
yes create namespaces
yes patch namespaces/wjw-prod
yes delete namespaces/wjw-prod
yes watch namespaces
yes create resourcequotas -n wjw-prod
yes patch resourcequotas -n wjw-prod
yes patch limitranges -n wjw-prod
yes patch networkpolicies.networking.k8s.io -n wjw-prod
yes patch rolebindings.rbac.authorization.k8s.io -n wjw-prod
yes patch serviceaccounts -n wjw-prod
no  create serviceaccounts --subresource=token -n wjw-prod
yes patch deployments.apps -n wjw-prod
yes patch statefulsets.apps -n wjw-prod
yes patch services -n wjw-prod
yes delete deployments.apps -n wjw-prod
yes delete statefulsets.apps -n wjw-prod
yes delete services -n wjw-prod
no  delete persistentvolumeclaims -n wjw-prod
yes watch pods
yes list nodes
yes delete pods -n wjw-prod
yes watch persistentvolumeclaims
no  delete resourcequotas -n wjw-prod
no  create pods -n wjw-prod
no  get secrets -n wjw-prod
no  create pods/exec -n wjw-prod
no  update nodes
no  delete customresourcedefinitions.apiextensions.k8s.io
no  create clusterroles.rbac.authorization.k8s.io/zhengyun-tenant-admin
no  patch clusterroles.rbac.authorization.k8s.io/zhengyun-tenant-viewer
no  escalate clusterroles.rbac.authorization.k8s.io/zhengyun-tenant-admin
yes bind clusterroles.rbac.authorization.k8s.io/zhengyun-tenant-admin
yes bind clusterroles.rbac.authorization.k8s.io/zhengyun-tenant-viewer
no  patch clusterroles.rbac.authorization.k8s.io/cluster-admin
no  bind clusterroles.rbac.authorization.k8s.io/cluster-admin
no  escalate clusterroles.rbac.authorization.k8s.io/admin
no  create clusterrolebindings.rbac.authorization.k8s.io
no  impersonate users
yes create priorityclasses.scheduling.k8s.io
yes patch priorityclasses.scheduling.k8s.io/zhengyun-gold
yes create events.events.k8s.io -n default
yes patch events -n default
yes create leases.coordination.k8s.io -n zhengyun-system
yes get leases.coordination.k8s.io/zhengyun-operator -n zhengyun-system
yes patch leases.coordination.k8s.io/zhengyun-operator -n zhengyun-system
no  update leases.coordination.k8s.io/zhengyun-operator -n zhengyun-system
no  patch leases.coordination.k8s.io/kube-controller-manager -n zhengyun-system
no  create leases.coordination.k8s.io -n kube-system
no  get secrets -n zhengyun-system
EOF

# What the API does: the custom resources, and nothing else in the cluster.
while read -r want verb resource flags; do
  # shellcheck disable=SC2086
  expect "$API" "$want" "$verb" "$resource" $flags
done <<'EOF'
yes create environments.zhengyun.io
yes update environments.zhengyun.io
yes delete environments.zhengyun.io
yes watch environments.zhengyun.io
yes create bureaus.zhengyun.io
yes patch bureaus.zhengyun.io
yes delete bureaus.zhengyun.io
yes list capacitypools.zhengyun.io
yes get ratecards.zhengyun.io
no  create capacitypools.zhengyun.io
no  patch ratecards.zhengyun.io
no  delete ratecards.zhengyun.io
no  patch environments.zhengyun.io --subresource=status
no  patch bureaus.zhengyun.io --subresource=status
no  get namespaces
no  list namespaces
no  create namespaces
no  delete namespaces/wjw-prod
no  get resourcequotas -n wjw-prod
no  list resourcequotas
no  patch resourcequotas -n wjw-prod
no  patch limitranges -n wjw-prod
no  create rolebindings.rbac.authorization.k8s.io -n wjw-prod
yes create secrets -n wjw-prod
yes delete secrets -n wjw-prod
no  get secrets -n wjw-prod
no  list secrets
no  update secrets -n wjw-prod
yes create serviceaccounts --subresource=token -n wjw-prod
no  create serviceaccounts -n wjw-prod
no  get secrets -n zhengyun-system
no  create leases.coordination.k8s.io -n zhengyun-system
no  list pods
EOF

# What the tenant roles grant in a namespace they are bound in: a bureau's admins write their
# workloads and Gateway API routes, never the platform's Gateways, quotas or RBAC; its viewers
# read. Asked as SubjectAccessReviews, which need no CRD installed (the Gateway API's may not be).
kubectl create rolebinding check-tenant-admin --clusterrole=zhengyun-tenant-admin \
  --group=check-admins -n "$SCRATCH" >/dev/null
kubectl create rolebinding check-tenant-viewer --clusterrole=zhengyun-tenant-viewer \
  --group=check-viewers -n "$SCRATCH" >/dev/null
while read -r group want verb resource api_group; do
  [ "$api_group" = core ] && api_group=
  allowed=$(kubectl create -o jsonpath='{.status.allowed}' -f - 2>/dev/null <<EOF || true
apiVersion: authorization.k8s.io/v1
kind: SubjectAccessReview
spec:
  user: check-someone
  groups: [check-$group]
  resourceAttributes: {namespace: $SCRATCH, verb: $verb, group: "$api_group", resource: $resource}
EOF
  )
  got=no
  [ "$allowed" = true ] && got=yes
  [ "$got" = "$want" ] && ok || fail "$group of a bureau: $verb $resource.$api_group: $got, expected $want"
done <<'EOF'
admins  yes create deployments      apps
admins  yes create ingresses        networking.k8s.io
admins  yes create httproutes       gateway.networking.k8s.io
admins  yes patch  grpcroutes       gateway.networking.k8s.io
admins  yes delete tlsroutes        gateway.networking.k8s.io
admins  no  create gateways         gateway.networking.k8s.io
admins  no  create gatewayclasses   gateway.networking.k8s.io
admins  no  create referencegrants  gateway.networking.k8s.io
admins  no  patch  resourcequotas   core
admins  no  create rolebindings     rbac.authorization.k8s.io
viewers yes list   httproutes       gateway.networking.k8s.io
viewers no  create httproutes       gateway.networking.k8s.io
viewers no  get    secrets          core
EOF

# as WHO pass|deny WHAT COMMAND…: runs a server-side dry-run write as WHO. These reach RBAC's
# escalation checks, which `can-i` does not: binding a role needs `bind` on it or every
# permission in it; writing a role needs `escalate` on it or every permission in it.
as() {
  local who=$1 want=$2 what=$3
  shift 3
  if "$@" --as="$who" --dry-run=server >"$tmp/out" 2>&1; then
    [ "$want" = pass ] && ok || fail "${who##*:} was allowed to $what"
  else
    if [ "$want" = deny ] && grep -qi forbidden "$tmp/out"; then ok
    else cat "$tmp/out" >&2; fail "${who##*:} could not $what"; fi
  fi
}
tenant_role() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: $1
rules:
  - apiGroups: [""]
    resources: [pods, pods/exec, secrets, configmaps]
    verbs: [get, list, watch, create, update, patch, delete]
EOF
}
as "$OPERATOR" pass "bind zhengyun-tenant-admin to a bureau's group" \
  kubectl create rolebinding zhengyun-tenant-admin --clusterrole=zhengyun-tenant-admin --group=wjw-admins -n "$SCRATCH"
as "$OPERATOR" deny "bind the built-in admin role" \
  kubectl create rolebinding check-admin --clusterrole=admin --group=wjw-admins -n "$SCRATCH"
tenant_role zhengyun-tenant-admin > "$tmp/tenant.yaml"
as "$OPERATOR" deny "write the tenant admin role (the chart owns it)" \
  kubectl apply --server-side --field-manager=zhengyun-operator -f "$tmp/tenant.yaml"
# Beyond RBAC, the operator-scope admission policy: namespaces and bindings it made, only.
as "$OPERATOR" deny "bind a tenant role in a namespace it did not make" \
  kubectl create rolebinding zhengyun-tenant-admin --clusterrole=zhengyun-tenant-admin --group=wjw-admins -n "$FOREIGN"
as "$OPERATOR" deny "delete a namespace it did not make" kubectl delete namespace "$FOREIGN"
as "$OPERATOR" deny "label a namespace it did not make" \
  kubectl label namespace "$FOREIGN" zhengyun.io/bureau=wjw
as "$OPERATOR" deny "create a namespace without its mark" kubectl create namespace zhengyun-check-bare
# Pods: only burst pods, in namespaces it made (reclaim of lent capacity).
kubectl run probe --image=registry.local/probe:1 --restart=Never -n "$FOREIGN" >/dev/null
kubectl run probe --image=registry.local/probe:1 --restart=Never -n "$SCRATCH" >/dev/null
as "$OPERATOR" deny "delete a pod in a namespace it did not make" kubectl delete pod probe -n "$FOREIGN"
as "$OPERATOR" deny "delete a pod that is not burst" kubectl delete pod probe -n "$SCRATCH"
as "$OPERATOR" pass "delete a namespace it made" kubectl delete namespace "$SCRATCH"
tenant_role zhengyun-check-other > "$tmp/other.yaml"
as "$OPERATOR" deny "write a ClusterRole other than the tenant roles" \
  kubectl apply --server-side --field-manager=zhengyun-operator -f "$tmp/other.yaml"
as "$API" deny "bind a tenant role" \
  kubectl create rolebinding zhengyun-tenant-admin --clusterrole=zhengyun-tenant-admin --group=wjw-admins -n "$SCRATCH"
as "$API" deny "create a namespace" kubectl create namespace zhengyun-check-api
as "$API" deny "create a ResourceQuota" kubectl create quota check --hard=cpu=1000 -n "$SCRATCH"
# Beyond RBAC, the api-scope admission policy: kubeconfig Secrets and tokens in namespaces the
# operator made, only.
cat > "$tmp/binding.yaml" <<EOF
apiVersion: v1
kind: Secret
type: zhengyun.io/kubeconfig-binding
metadata:
  name: zhengyun-kubeconfig-check
  labels: {zhengyun.io/kubeconfig: 0123456789abcdef}
EOF
as "$API" pass "create a kubeconfig Secret in a namespace the operator made" \
  kubectl create -f "$tmp/binding.yaml" -n "$SCRATCH"
as "$API" deny "create a kubeconfig Secret in a namespace the operator did not make" \
  kubectl create -f "$tmp/binding.yaml" -n "$FOREIGN"
as "$API" deny "create a Secret of another kind" \
  kubectl create secret generic check --from-literal=a=b -n "$SCRATCH"
kubectl create secret generic check-other --from-literal=a=b -n "$SCRATCH" >/dev/null
as "$API" deny "delete a Secret that is no kubeconfig's" kubectl delete secret check-other -n "$SCRATCH"
# Tokens are not stored, so these requests are made for real (a token request has no dry run).
kubectl create -f "$tmp/binding.yaml" -n "$SCRATCH" >/dev/null
kubectl create serviceaccount zhengyun-kubeconfig-admin -n "$SCRATCH" >/dev/null
# token_as pass|deny WHAT ARGS…: asks for a token as the API.
token_as() {
  local want=$1 what=$2
  shift 2
  if kubectl create token "$@" --as="$API" -n "$SCRATCH" >"$tmp/out" 2>&1; then
    [ "$want" = pass ] && ok || fail "the API was allowed to $what"
  else
    if [ "$want" = deny ] && grep -qi forbidden "$tmp/out"; then ok
    else cat "$tmp/out" >&2; fail "the API could not $what"; fi
  fi
}
token_as pass "ask for a kubeconfig account's token bound to its Secret" \
  zhengyun-kubeconfig-admin --bound-object-kind Secret --bound-object-name zhengyun-kubeconfig-check
token_as deny "ask for a kubeconfig account's token bound to nothing" zhengyun-kubeconfig-admin
token_as deny "ask for another account's token" \
  default --bound-object-kind Secret --bound-object-name zhengyun-kubeconfig-check
as "$API" pass "delete a kubeconfig Secret" kubectl delete secret zhengyun-kubeconfig-check -n "$SCRATCH"

# The API itself, running as the chart's API service account, through its everyday calls: any
# permission the chart forgot shows as an error status.
step "zhengyun api as $API"
if [ -x target/debug/zhengyun ]; then
  kubectl config view --raw --minify | sed "/^  user:\$/a\\    as: $API" > "$tmp/api.kubeconfig"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  api_token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  KUBECONFIG="$tmp/api.kubeconfig" ZHENGYUN_BOOTSTRAP_TOKEN=$api_token \
    ZHENGYUN_DATABASE_URL="sqlite://$tmp/api.db?mode=rwc" ZHENGYUN_API_ADDR=127.0.0.1:$port \
    target/debug/zhengyun api > "$tmp/api.log" 2>&1 &
  api_pid=$!
  url=http://127.0.0.1:$port
  for _ in $(seq 1 60); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.5; done
  # call STATUS METHOD PATH [BODY]: one API call as the platform admin, expecting STATUS.
  call() {
    local want=$1 method=$2 path=$3 body=${4:-} got
    got=$(curl -s -o "$tmp/answer" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $api_token" \
      ${body:+-H 'Content-Type: application/json' -d "$body"} "$url$path")
    if [ "$got" = "$want" ]; then ok; else fail "API as its service account: $method $path answered $got, want $want: $(cat "$tmp/answer")"; fi
  }
  code=chk$(date +%s | tail -c 6)
  call 200 GET /readyz
  call 201 POST /api/v1/bureaus "{\"name\":\"$code\",\"displayName\":\"区统计局\",\"kind\":\"bureau\",\"quota\":{\"cpu\":\"4\",\"memory\":\"8Gi\"}}"
  call 200 PATCH "/api/v1/bureaus/$code" '{"quota":{"cpu":"6","memory":"8Gi"}}'
  call 201 POST /api/v1/tokens "{\"role\":\"bureau-admin\",\"bureau\":\"$code\"}"
  call 201 POST "/api/v1/bureaus/$code/environments" '{"purpose":"dev","quota":{"cpu":"1","memory":"1Gi"}}'
  call 200 GET "/api/v1/bureaus/$code/environments"
  call 200 PATCH "/api/v1/bureaus/$code/environments/$code-dev" '{"quota":{"cpu":"2","memory":"1Gi"}}'
  call 202 POST "/api/v1/bureaus/$code/environments" '{"purpose":"prod","quota":{"cpu":"50","memory":"1Gi"}}'
  request_id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$tmp/answer")
  call 200 POST "/api/v1/requests/$request_id/approve" '{}'
  call 202 DELETE "/api/v1/bureaus/$code/environments/$code-dev"
  call 202 DELETE "/api/v1/bureaus/$code/environments/$code-prod"
  # No operator runs in this check: do its part and release the deleted environments (they never
  # had a namespace), or they would keep the cleanup finalizer the API gave them at creation.
  for env in "$code-dev" "$code-prod"; do
    kubectl patch environment "$env" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  for _ in $(seq 1 20); do
    [ "$(kubectl get environments --field-selector "spec.bureau=$code" --no-headers 2>/dev/null | wc -l)" = 0 ] && break
    sleep 0.5
  done
  call 204 DELETE "/api/v1/bureaus/$code"
  kill "$api_pid" 2>/dev/null || true
  wait "$api_pid" 2>/dev/null || true
  if grep -qi forbidden "$tmp/api.log"; then fail "the API's log shows a forbidden call: $(grep -i forbidden "$tmp/api.log" | head -3)"; fi
else
  fail "target/debug/zhengyun is missing: cargo build -p zhengyun"
fi

echo "chart: $passed passed, $failures failed"
[ "$failures" = 0 ]

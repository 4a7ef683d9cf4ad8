#!/usr/bin/env bash
# Builds tools/helm/bin/helm from the Go module proxy (helm.sh/helm/v3, pinned in
# tools/helm/go.mod as a `tool`) when it is missing or older than tools/helm/go.mod.
# A module of its own: Helm pins Kubernetes libraries of another minor version than
# tests/devcluster. The first build downloads and compiles Helm: two to four minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../tools/helm"
command -v go >/dev/null || { echo "Go is required to build Helm (see README)" >&2; exit 1; }
if [ -x bin/helm ] && [ bin/helm -nt go.mod ] && [ bin/helm -nt go.sum ]; then
  exit 0
fi
version=$(awk '$1 == "helm.sh/helm/v3" {print $2}' go.mod)
k8s_minor=$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]}' go.mod)
[ -n "$version" ] && [ -n "$k8s_minor" ] || { echo "tools/helm/go.mod does not pin helm.sh/helm/v3 and k8s.io/client-go" >&2; exit 1; }
echo "building Helm $version (first build downloads and compiles it: two to four minutes on 2 cores)…"
start=$SECONDS
# What Helm's own release build sets: its version, and the Kubernetes version that `helm
# template` and `helm lint` assume (that of the client libraries it is built with).
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
mkdir -p bin
go build -trimpath -ldflags "$ldflags" -o bin/.helm.tmp helm.sh/helm/v3/cmd/helm &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 15
  kill -0 "$pid" 2>/dev/null && echo "  … still compiling Helm ($((SECONDS - start)) s)"
done
wait "$pid"
mv bin/.helm.tmp bin/helm
echo "built tools/helm/bin/helm ($(bin/helm version --template '{{.Version}}')) in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager (the control plane the Kubernetes tests run
# against: no scheduler, no kubelet) from the Go module proxy and caches them outside the
# repository, so only the first run on a machine pays for the build (~6 minutes on 2 cores).
#
# k8s.io/kubernetes's go.mod replaces its 31 k8s.io/* staging modules with ./staging/... paths
# that a module download does not contain; they are published separately at v0.<minor>.<patch>,
# so we drop each replace and require the published version.
#
# Prints the directory holding both binaries on its last line (stdout); progress goes to stderr.
# etcd comes from Debian (etcd-server), installed by .ci/run. Idempotent.
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.34.2}"
STAGING_VERSION="v0.${KUBERNETES_VERSION#v1.}"
# shellcheck source=scripts/go-module.sh
. "$(dirname "$0")/go-module.sh"
CACHE=$(peer_cache kubernetes "$KUBERNETES_VERSION")

if [ -x "$CACHE/kube-apiserver" ] && [ -x "$CACHE/kube-controller-manager" ] && "$CACHE/kube-apiserver" --version >/dev/null 2>&1 && "$CACHE/kube-controller-manager" --version >/dev/null 2>&1; then
  echo "$CACHE"
  exit 0
fi
not_built_yet
require_go kube-apiserver
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
writable_module_copy "k8s.io/kubernetes@$KUBERNETES_VERSION" "$WORK"
cd "$WORK/src"
for module in $(sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*|\1|p' go.mod); do
  go mod edit -dropreplace="$module" -require="$module@$STAGING_VERSION"
done
mkdir -p "$CACHE"
for cmd in kube-apiserver kube-controller-manager; do
  log "building $cmd (a few minutes)"
  GOWORK=off GOFLAGS=-mod=mod go build -trimpath -o "$CACHE/$cmd.tmp" "./cmd/$cmd"
  mv "$CACHE/$cmd.tmp" "$CACHE/$cmd"
done
echo "$CACHE"

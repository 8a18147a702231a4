#!/usr/bin/env bash
# Builds helm (for `helm lint` and `helm template` of deploy/chart in the tests) from the Go module
# proxy with `go install`, into a cache outside the repository. Prints the binary's path on its
# last line; progress goes to stderr. Idempotent.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.2}"
# shellcheck source=scripts/go-module.sh
. "$(dirname "$0")/go-module.sh"
CACHE=$(peer_cache helm "$HELM_VERSION")

if [ -x "$CACHE/helm" ] && "$CACHE/helm" version --short >/dev/null 2>&1; then
  echo "$CACHE/helm"
  exit 0
fi
not_built_yet
require_go helm
log "building helm.sh/helm/v3/cmd/helm@$HELM_VERSION (a few minutes)"
mkdir -p "$CACHE"
GOBIN="$CACHE" GOWORK=off go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$CACHE/helm"

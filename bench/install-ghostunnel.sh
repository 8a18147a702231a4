#!/usr/bin/env bash
# Builds ghostunnel (the Go mTLS tunnel the bench compares against) from the Go module proxy and
# caches it outside the repository. The proxy serves module versions, not `go install` of this
# module, so we download the module's source, copy it somewhere writable and `go build` it.
# Prints the binary's path on its last line (stdout); progress goes to stderr. Idempotent.
set -euo pipefail

GHOSTUNNEL_VERSION="${GHOSTUNNEL_VERSION:-v1.8.4}"
# shellcheck source=scripts/go-module.sh
. "$(dirname "$0")/../scripts/go-module.sh"
CACHE=$(peer_cache ghostunnel "$GHOSTUNNEL_VERSION")
BIN="$CACHE/ghostunnel"

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi
require_go ghostunnel
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
writable_module_copy "github.com/ghostunnel/ghostunnel@$GHOSTUNNEL_VERSION" "$WORK"
log "building (about a minute)"
mkdir -p "$CACHE"
(cd "$WORK/src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -o "$BIN" .)
echo "$BIN"

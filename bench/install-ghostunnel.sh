#!/usr/bin/env bash
# Builds ghostunnel (the Go mTLS tunnel the bench compares against) from the Go module proxy and
# caches it outside the repository. The proxy serves module versions, not `go install` of this
# module, so we download the module's source, copy it somewhere writable and `go build` it.
# Prints the binary's path on its last line (stdout); progress goes to stderr. Idempotent.
set -euo pipefail

GHOSTUNNEL_VERSION="${GHOSTUNNEL_VERSION:-v1.8.4}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vault-mtls-sidecar/ghostunnel/$GHOSTUNNEL_VERSION"
BIN="$CACHE/ghostunnel"
log() { printf '[install-ghostunnel] %s\n' "$*" >&2; }

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { log "Go is required to build ghostunnel"; exit 1; }

log "downloading github.com/ghostunnel/ghostunnel@$GHOSTUNNEL_VERSION"
SRC_RO=$(cd / && go mod download -json "github.com/ghostunnel/ghostunnel@$GHOSTUNNEL_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$SRC_RO" ] || { log "the Go module proxy did not serve ghostunnel $GHOSTUNNEL_VERSION"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$SRC_RO" "$WORK/src" && chmod -R u+w "$WORK/src"
log "building (about a minute)"
mkdir -p "$CACHE"
(cd "$WORK/src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath -o "$BIN" .)
echo "$BIN"

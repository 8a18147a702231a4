#!/usr/bin/env bash
# Builds the grpc-go test peer (test/peers/grpc: a grpc-go client and server for
# test/integration/grpc-go.test.ts) with the modules pinned in its go.mod/go.sum, from the Go module
# proxy, into a cache outside the repository keyed by a hash of its source, so a change to the peer
# builds it again and an unchanged one is built once per machine (~1 minute on 2 cores).
# Prints the binary's path on its last line; progress goes to stderr. Idempotent.
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/../test/peers/grpc" && pwd)"
# shellcheck source=scripts/go-module.sh
. "$(dirname "$0")/go-module.sh"
HASH=$(cd "$SOURCE" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
CACHE=$(peer_cache grpc-peer "$HASH")

if [ -x "$CACHE/grpc-peer" ]; then
  echo "$CACHE/grpc-peer"
  exit 0
fi
not_built_yet
require_go "the grpc-go test peer (its go.mod needs Go >= $(sed -n 's/^go //p' "$SOURCE/go.mod"))"
log "building test/peers/grpc (google.golang.org/grpc $(sed -n 's/^[[:space:]]*google.golang.org\/grpc \(v[^ ]*\).*/\1/p' "$SOURCE/go.mod"))"
mkdir -p "$CACHE"
(cd "$SOURCE" && GOWORK=off GOFLAGS=-mod=readonly go build -trimpath -o "$CACHE/grpc-peer.tmp" .)
mv "$CACHE/grpc-peer.tmp" "$CACHE/grpc-peer"
echo "$CACHE/grpc-peer"

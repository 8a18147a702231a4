#!/usr/bin/env bash
# Builds the product image from the project's Dockerfile with podman (no Docker daemon), for the
# tests that run it: test/e2e/image-contract.test.ts and the cluster tests. The base,
# node:24-bookworm-slim, comes from scripts/install-base-image.sh when the machine has none.
#
# The image is named localhost/vault-mtls-sidecar:<hash of what goes into it> (Dockerfile,
# .dockerignore, package files, scripts/build.mjs, src/), so a change to any of them builds a new
# one and an unchanged tree reuses it. Kept in podman's storage and, as an archive that containerd
# imports (`ctr -n k8s.io images import`), in ~/.cache/vault-mtls-sidecar/image/<hash>/image.tar.
#
# The build gets the host's npm cache (fast, and the registry is asked only for what is missing)
# and, when the host trusts a CA that the image's Node does not (a TLS-inspecting proxy), that CA
# bundle and an npmrc naming it — both mounted for the build only, never copied into the image.
#
# Prints the cache directory (image.tar and name) on its last line (stdout); progress on stderr.
set -euo pipefail
# shellcheck source=scripts/image/common.sh
. "$(dirname "$0")/image/common.sh"

cd "$REPO_ROOT"
inputs_hash=$( { sha256sum Dockerfile .dockerignore package.json package-lock.json scripts/build.mjs; find src -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
IMAGE="localhost/vault-mtls-sidecar:$inputs_hash"
CACHE=$(peer_cache image "$inputs_hash")

require_podman "the product image"
if [ -s "$CACHE/image.tar" ] && [ "$(cat "$CACHE/name" 2>/dev/null)" = "$IMAGE" ] && podman image exists "$IMAGE"; then
  echo "$CACHE"
  exit 0
fi
not_built_yet
"$REPO_ROOT/scripts/install-base-image.sh" >/dev/null

mounts=()
[ -d "$HOME/.npm" ] && mounts+=(-v "$HOME/.npm:/root/.npm")
host_ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -s "$host_ca" ]; then
  printf 'cafile=/run/host-ca.crt\n' >"$WORK/npmrc"
  mounts+=(-v "$host_ca:/run/host-ca.crt:ro" -v "$WORK/npmrc:/usr/local/etc/npmrc:ro")
fi

log "podman build of the Dockerfile as $IMAGE (a minute or two)"
podman build --pull=never --network=host "${mounts[@]}" -t "$IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1 || {
  tail -n 30 "$WORK/build.log" >&2
  log "podman build failed (full log above)"
  exit 1
}
mkdir -p "$CACHE"
podman save --quiet --format docker-archive -o "$CACHE/image.tar.tmp" "$IMAGE" >/dev/null
mv "$CACHE/image.tar.tmp" "$CACHE/image.tar"
echo "$IMAGE" >"$CACHE/name"
# Earlier trees' images are not needed again: keep the storage and the cache to the current one.
for old in "$(dirname "$CACHE")"/*; do
  [ "$old" = "$CACHE" ] && continue
  podman rmi -f "localhost/vault-mtls-sidecar:$(basename "$old")" >/dev/null 2>&1 || true
  rm -rf "$old"
done
echo "$CACHE"

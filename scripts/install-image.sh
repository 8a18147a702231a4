#!/usr/bin/env bash
# Builds the product image from the project's Dockerfile with podman (no Docker daemon), for the
# tests that run it: test/e2e/image-contract.test.ts and the cluster tests. The base,
# node:24-bookworm-slim, comes from scripts/install-base-image.sh when the machine has none.
#
# The image is named localhost/vault-mtls-sidecar:<hash of what goes into it> (the base image's
# ID, Dockerfile, .dockerignore, package files, scripts/build.mjs and image/runtime-modules.cjs,
# this script, src/), so a change to any of them builds a new one and an unchanged tree reuses it.
# Kept in podman's storage and, as an archive that containerd imports (`ctr -n k8s.io images
# import`), in ~/.cache/vault-mtls-sidecar/image/<hash>/image.tar.
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
require_podman "the product image"
# One build at a time per machine (two checkouts, a test run beside prepare-tests): the check, the
# build and the save happen under a lock on the cache root, so nobody reads a half-written cache or
# removes the image another run is about to use.
IMAGES=$(dirname "$(peer_cache image x)")
mkdir -p "$IMAGES"
exec 9>"$IMAGES/.lock"
flock 9
# The base first: its image ID is one of the inputs (a rebuilt base makes a new product image).
BASE_IMAGE=$("$REPO_ROOT/scripts/install-base-image.sh" | tail -n 1)
base_id=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")
inputs_hash=$( { echo "$base_id"; sha256sum Dockerfile .dockerignore package.json package-lock.json scripts/build.mjs scripts/image/runtime-modules.cjs scripts/install-image.sh; find src -type f -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
IMAGE="localhost/vault-mtls-sidecar:$inputs_hash"
CACHE="$IMAGES/$inputs_hash"
if [ -s "$CACHE/image.tar" ] && [ "$(cat "$CACHE/name" 2>/dev/null)" = "$IMAGE" ] && podman image exists "$IMAGE"; then
  touch "$CACHE" # most recently used: kept by the cleanup below
  echo "$CACHE"
  exit 0
fi
not_built_yet

mounts=()
[ -d "$HOME/.npm" ] && mounts+=(-v "$HOME/.npm:/root/.npm")
host_ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
WORK=$(mktemp -d)
mkdir -p "$CACHE"
# The archive is written in a directory of its own beside its final place, then moved in: podman
# will not save over an existing file, and an interrupted save must not look like a cache.
SAVING=$(mktemp -d "$CACHE/.saving.XXXXXX")
trap 'rm -rf "$WORK" "$SAVING"' EXIT
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
# The build stage's images (labelled in the Dockerfile; untagged once the build is done) are of no
# use but to a rebuild's layer cache, and each rebuild would leave ~165 MB more of them.
podman image prune --force --filter label=io.vault-mtls-sidecar.stage=build >/dev/null
# Leftovers of interrupted runs (saves of other days; the image.tar.tmp of earlier versions).
find "$IMAGES" -mindepth 2 -maxdepth 2 \( -name '.saving.*' ! -path "$SAVING" -o -name 'image.tar.tmp' \) -exec rm -rf {} +
podman save --quiet --format docker-archive -o "$SAVING/image.tar" "$IMAGE" >/dev/null
echo "$IMAGE" >"$SAVING/name"
mv -f "$SAVING/image.tar" "$CACHE/image.tar"
mv -f "$SAVING/name" "$CACHE/name"
touch "$CACHE"
# Older trees' images: keep the few most recently used (another checkout, or a branch switched
# back to, may still use one), and remove the rest only where podman agrees — plain rmi refuses
# an image a container (running or not) still uses, and its cache then stays too.
KEEP=3
ls -1dt "$IMAGES"/*/ 2>/dev/null | tail -n +$((KEEP + 1)) | while read -r old; do
  old=${old%/}
  name="localhost/vault-mtls-sidecar:$(basename "$old")"
  if ! podman image exists "$name" || podman rmi "$name" >/dev/null 2>&1; then
    rm -rf "$old"
  fi
done
echo "$CACHE"

#!/usr/bin/env bash
# Makes the base image the Dockerfile starts from, node:24-bookworm-slim, on a machine that cannot
# pull it (no Docker daemon, no container registry): a Debian bookworm root from debootstrap
# (--variant=minbase, Debian's own packages) plus the Node 24 binary the npm registry ships
# (node-linux-<arch>, the package the `node` devDependency installs, at NODE_IMAGE_VERSION) and
# npm, laid out as the official image lays them out (/usr/local/bin/node, npm, user node uid 1000),
# imported into podman's storage as docker.io/library/node:24-bookworm-slim. A machine that has the
# official image keeps it: this script only fills the gap.
#
# Kept in podman's storage once per machine (about 2-4 minutes the first time, mostly debootstrap).
# Prints the image's name on its last line (stdout); progress goes to stderr. Idempotent.
set -euo pipefail
# shellcheck source=scripts/image/common.sh
. "$(dirname "$0")/image/common.sh"

BASE_IMAGE=docker.io/library/node:24-bookworm-slim
NPM_VERSION="${NPM_VERSION:-11.6.2}"
# The Node 24 patch release in the image, as the official node:24-bookworm-slim carries the newest:
# newer than the `node` devDependency's (the npm wrapper package lags the node-linux-<arch> builds).
# It matters: 24.21.0's TLS server keeps native memory per closed connection (an inbound sidecar
# after 10,000 tcp connections: RSS +51 MB on 24.21.0, +13 MB on 24.22.3; issue 24).
NODE_IMAGE_VERSION="${NODE_IMAGE_VERSION:-24.22.3}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

require_podman "the base image"
# An exact version: what the image's NODE_VERSION is compared with (a range would never equal it
# and remake the image on every run).
[[ "$NODE_IMAGE_VERSION" =~ ^24\.[0-9]+\.[0-9]+$ ]] ||
  { log "NODE_IMAGE_VERSION must be an exact Node 24 version such as 24.22.3 (got '$NODE_IMAGE_VERSION')"; exit 1; }
arch=$(node_arch)
old_image=""
if podman image exists "$BASE_IMAGE"; then
  # One this script made keeps the Node it was made with: made again when NODE_IMAGE_VERSION moves.
  made_here=$(podman image inspect --format '{{index .Config.Labels "io.vault-mtls-sidecar.base"}}' "$BASE_IMAGE" 2>/dev/null || true)
  has=$(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$BASE_IMAGE" 2>/dev/null | sed -n 's/^NODE_VERSION=//p')
  wants=$NODE_IMAGE_VERSION
  if [ "$made_here" != debootstrap ] || [ "$has" = "$wants" ]; then
    echo "$BASE_IMAGE"
    exit 0
  fi
  log "the base image has Node ${has:-?}, NODE_IMAGE_VERSION is $wants: making it again (the old one stays until the new one is in place)"
  old_image=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")
fi
not_built_yet
command -v debootstrap >/dev/null || { log "the base image needs debootstrap (apt-get install debootstrap)"; exit 1; }
[ "$(id -u)" = 0 ] || { log "debootstrap needs root to build the base image"; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log "fetching node-linux-$arch@$NODE_IMAGE_VERSION from the npm registry"
(cd "$WORK" && npm pack --silent "node-linux-$arch@$NODE_IMAGE_VERSION" >/dev/null && mkdir node && tar -xzf node-linux-*.tgz -C node)
node_pkg="$WORK/node/package"
node_version=$("$node_pkg/bin/node" --version)
case "$node_version" in v24.*) ;; *) log "expected Node 24 in $node_pkg, found $node_version"; exit 1 ;; esac
log "fetching npm@$NPM_VERSION from the npm registry"
(cd "$WORK" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)

log "debootstrap --variant=minbase bookworm (a few minutes)"
debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -n 20 "$WORK/debootstrap.log" >&2
  log "debootstrap failed (is $MIRROR reachable?)"
  exit 1
}
root="$WORK/rootfs"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*

log "adding Node $node_version and npm $NPM_VERSION"
install -m 0755 "$node_pkg/bin/node" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules/npm"
tar -xzf "$WORK"/npm-*.tgz -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
# The official image's user: node, uid and gid 1000, home /home/node.
echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$root/etc/passwd"
echo 'node:x:1000:' >>"$root/etc/group"
echo 'node:*:20000:0:99999:7:::' >>"$root/etc/shadow"
install -d -o 1000 -g 1000 "$root/home/node"

log "importing as $BASE_IMAGE"
# Under a name of its own first: a failed import leaves the image that was there as it was.
staging="localhost/vault-mtls-sidecar-base:staging-$$"
tar -C "$root" -c . | podman import --quiet \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=${node_version#v}" \
  --change 'CMD ["node"]' \
  --change "LABEL io.vault-mtls-sidecar.base=debootstrap" \
  - "$staging" >/dev/null
podman tag "$staging" "$BASE_IMAGE"
podman untag "$staging" "$staging"
# The replaced image, unless something still uses it (podman then keeps it; no --force).
[ -n "$old_image" ] && podman rmi "$old_image" >/dev/null 2>&1 || true
echo "$BASE_IMAGE"

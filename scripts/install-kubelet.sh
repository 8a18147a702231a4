#!/usr/bin/env bash
# Builds the kubelet (the node agent the cluster tests run pods with, on containerd) from the Go
# module proxy, like scripts/install-kubernetes.sh builds the control plane, and caches it outside
# the repository. After install-kubernetes.sh most packages come from Go's build cache (a few
# minutes on 2 cores). Beside it, the pod sandbox ("pause") image containerd starts every pod
# with, which no registry can give us here: Kubernetes' own build/pause/linux/pause.c from the
# same module, compiled static, imported with podman and saved as pause.tar for
# `ctr -n k8s.io images import`.
#
# Prints the directory holding kubelet and pause.tar on its last line (stdout); progress on stderr.
# containerd, runc and the CNI plugins come from Debian (scripts/prepare-tests.sh). Idempotent.
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.34.2}"
STAGING_VERSION="v0.${KUBERNETES_VERSION#v1.}"
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/go-module.sh
. "$SCRIPTS/go-module.sh"
CACHE=$(peer_cache kubelet "$KUBERNETES_VERSION")
# The sandbox image kubelet v1.34 expects; containerd's config names the same (test/support/kube-node.ts).
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1

# A kubelet built before the version was stamped says v0.0.0-master: it is rebuilt.
if [ -x "$CACHE/kubelet" ] && [ -s "$CACHE/pause.tar" ] && "$CACHE/kubelet" --version 2>/dev/null | grep -qx "Kubernetes $KUBERNETES_VERSION"; then
  echo "$CACHE"
  exit 0
fi
not_built_yet
require_go kubelet
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
writable_module_copy "k8s.io/kubernetes@$KUBERNETES_VERSION" "$WORK"
cd "$WORK/src"
# The staging modules are replaced by ./staging paths a module download lacks: require the
# published versions instead (as install-kubernetes.sh does).
for module in $(sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*|\1|p' go.mod); do
  go mod edit -dropreplace="$module" -require="$module@$STAGING_VERSION"
done
mkdir -p "$CACHE"
log "building pause (the pod sandbox) as $PAUSE_IMAGE"
mkdir -p "$WORK/pause-root"
gcc -Os -static -DVERSION="${PAUSE_IMAGE##*:}" -o "$WORK/pause-root/pause" build/pause/linux/pause.c
tar -C "$WORK/pause-root" -c pause | CONTAINERS_CONF="$SCRIPTS/image/containers.conf" \
  podman import --quiet --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' - "$PAUSE_IMAGE" >/dev/null
# Saved beside its final place, then moved in: podman will not save over an existing archive (a
# run that built pause but not the kubelet), and an interrupted save must not look like a cache.
SAVING=$(mktemp -d "$CACHE/.saving.XXXXXX")
trap 'rm -rf "$WORK" "$SAVING"' EXIT
podman save --quiet --format docker-archive -o "$SAVING/pause.tar" "$PAUSE_IMAGE"
mv -f "$SAVING/pause.tar" "$CACHE/pause.tar"
if ! "$CACHE/kubelet" --version 2>/dev/null | grep -qx "Kubernetes $KUBERNETES_VERSION"; then
  log "building kubelet (a few minutes)"
  # The version Kubernetes' own build stamps (hack/lib/version.sh): without it the kubelet reports
  # v0.0.0-master, in `kubelet --version` and in the Node's status.nodeInfo.kubeletVersion. The
  # module download has no git metadata: no commit, tree state "archive".
  MINOR="${KUBERNETES_VERSION#v1.}"
  VERSION_PKG=k8s.io/component-base/version
  LDFLAGS="-X $VERSION_PKG.gitVersion=$KUBERNETES_VERSION -X $VERSION_PKG.gitMajor=1 -X $VERSION_PKG.gitMinor=${MINOR%%.*} -X $VERSION_PKG.gitTreeState=archive"
  GOWORK=off GOFLAGS=-mod=mod go build -trimpath -ldflags "$LDFLAGS" -o "$CACHE/kubelet.tmp" ./cmd/kubelet
  mv "$CACHE/kubelet.tmp" "$CACHE/kubelet"
fi
echo "$CACHE"

# Sourced by the scripts that build and run the container images without a Docker daemon
# (scripts/install-base-image.sh, scripts/install-image.sh, the cluster scripts): podman with our
# containers.conf, and where the results are kept once per machine.
# shellcheck source=scripts/go-module.sh
. "$(dirname "$0")/go-module.sh"

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF="$REPO_ROOT/scripts/image/containers.conf"

# require_podman WHAT: podman (and runc) must be installed; scripts/prepare-tests.sh installs them.
require_podman() {
  command -v podman >/dev/null && command -v runc >/dev/null && return 0
  log "$1 needs podman and runc (Debian: apt-get install podman runc); scripts/prepare-tests.sh installs them"
  exit 1
}

# node_arch: the npm registry's name for this machine's architecture (node-linux-<arch>).
node_arch() {
  case "$(uname -m)" in
    x86_64) echo x64 ;;
    aarch64) echo arm64 ;;
    *) log "no Node build for $(uname -m) in the npm registry"; exit 1 ;;
  esac
}

#!/usr/bin/env bash
# Runs before `npm test` (the `pretest` script): makes sure everything the tests use is on this
# machine before any test starts, so a missing tool is one message at the start, never a failure
# deep in the output or a suite skipped by a hook that timed out.
#
#   1. Debian tools the tests run as a user would: curl, perl, openssl, nmap, keytool (Java 17),
#      faketime, promtool (prometheus) and etcd (etcd-server); for the container image and the
#      one-node cluster: podman, runc, containerd (and ctr), debootstrap, the CNI plugins
#      (containernetworking-plugins), ip (iproute2), nsenter and gcc (the pod sandbox binary).
#      Missing ones are installed with apt-get when we are root on a machine that has it; otherwise
#      we stop with the command to run.
#   2. Go (>= 1.25), which builds the servers below from the Go module proxy.
#   3. The servers, built once per machine into ~/.cache/vault-mtls-sidecar (later runs reuse them):
#      OpenBao (or Vault), kube-apiserver + kube-controller-manager, helm, and the kubelet with the
#      pod sandbox image. Each build runs to completion here, with a progress line and its time,
#      before vitest starts.
#   4. The container images, with podman: the node:24-bookworm-slim base when the machine has none
#      (debootstrap + the npm registry's Node 24; once per machine), then the product image from the
#      Dockerfile (again whenever what goes into it changes).
#
# VAULT_ADDR (a server of yours) or BAO_BIN (a binary of yours) still need the OpenBao build for the
# tests that stop and restart Vault, unless BAO_BIN is set. Exit status: 0 ready, 1 something missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[prepare-tests] %s\n' "$*" >&2; }
fail() { printf '[prepare-tests] ERROR %s\n' "$*" >&2; exit 1; }

# command -> Debian package that provides it.
declare -A PACKAGE=(
  [curl]=curl [perl]=perl [openssl]=openssl [nmap]=nmap [keytool]=openjdk-17-jre-headless
  [faketime]=faketime [promtool]=prometheus [etcd]=etcd-server
  [podman]=podman [runc]=runc [containerd]=containerd [ctr]=containerd [debootstrap]=debootstrap
  [ip]=iproute2 [nsenter]=util-linux [gcc]=gcc [/usr/lib/cni/bridge]=containernetworking-plugins
)
ORDER=(curl perl openssl nmap keytool faketime promtool etcd podman runc containerd ctr debootstrap ip nsenter gcc /usr/lib/cni/bridge)

# A tool is a command on the PATH, or a path (the CNI plugins are not on the PATH).
have() { if [ "${1#/}" != "$1" ]; then [ -x "$1" ]; else command -v "$1" >/dev/null; fi; }

missing_packages() {
  local tool
  for tool in "${ORDER[@]}"; do have "$tool" || printf '%s\n' "${PACKAGE[$tool]}"; done | sort -u
}

# prometheus is installed without its recommends (node-exporter and friends are not needed for promtool).
install_command() {
  local plain=() p
  for p in "$@"; do [ "$p" = prometheus ] || plain+=("$p"); done
  local cmd="apt-get update"
  [ "${#plain[@]}" -gt 0 ] && cmd+=" && apt-get install -y ca-certificates ${plain[*]}"
  printf '%s' "$cmd"
  for p in "$@"; do [ "$p" = prometheus ] && printf ' && apt-get install -y --no-install-recommends prometheus'; done
  printf '\n'
}

mapfile -t needed < <(missing_packages)
if [ "${#needed[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages the tests use: ${needed[*]} (first run only)"
    started=$SECONDS
    if ! DEBIAN_FRONTEND=noninteractive bash -c "$(install_command "${needed[@]}" | sed 's/apt-get /apt-get -qq /g')" >/tmp/prepare-tests-apt.log 2>&1; then
      tail -n 20 /tmp/prepare-tests-apt.log >&2
      fail "apt-get could not install ${needed[*]} (log: /tmp/prepare-tests-apt.log); fix the package source and rerun npm test"
    fi
    mapfile -t still < <(missing_packages)
    [ "${#still[@]}" -eq 0 ] || fail "installed, but still not on PATH: ${still[*]}; check the packages and rerun npm test"
    say "installed in $((SECONDS - started))s"
  elif command -v apt-get >/dev/null; then
    fail "npm test needs Debian packages that are not installed: ${needed[*]}. Run as root: sudo sh -c '$(install_command "${needed[@]}")' and rerun npm test"
  else
    fail "npm test needs tools that are not installed: $(for t in "${ORDER[@]}"; do have "$t" || printf '%s ' "$t"; done)(Debian packages: ${needed[*]}); install them with your package manager and rerun npm test"
  fi
fi

command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || fail "npm test builds its test servers with Go, which is not installed: install Go >= 1.25 (https://go.dev/dl) and rerun npm test"
go_minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
[ -n "$go_minor" ] && [ "$go_minor" -ge 25 ] || fail "npm test needs Go >= 1.25 to build its test servers; found $(go env GOVERSION): upgrade Go and rerun npm test"

# build LABEL SCRIPT [HOW]: runs an idempotent install script, reporting time only when it had work to do.
build() {
  local label=$1 script=$2 how=${3:-"building from the Go module proxy (first run on this machine only)"} started=$SECONDS out
  if out=$(CACHED_ONLY=1 "$script" 2>/dev/null); then
    say "$label: ready (${out##*$'\n'})"
    return
  fi
  say "$label: $how"
  "$script" >/dev/null || fail "$label: $script failed (its output is above); fix what it names and rerun npm test"
  say "$label: built in $(((SECONDS - started) / 60))m$(((SECONDS - started) % 60))s"
}

if [ -n "${BAO_BIN:-}" ]; then
  [ -x "$BAO_BIN" ] || fail "BAO_BIN=$BAO_BIN is not an executable; point it at a bao or vault binary, or unset it"
  say "OpenBao/Vault: BAO_BIN=$BAO_BIN"
else
  build "OpenBao/Vault server" scripts/install-openbao.sh
fi
build "kube-apiserver and kube-controller-manager" scripts/install-kubernetes.sh
build "helm" scripts/install-helm.sh
build "kubelet and the pod sandbox image" scripts/install-kubelet.sh
build "base image node:24-bookworm-slim" scripts/install-base-image.sh \
  "making it with debootstrap and the npm registry's Node 24 (first run on this machine only)"
build "product image" scripts/install-image.sh \
  "podman build of the Dockerfile (again whenever the Dockerfile, package files or src/ change)"
say "ready: tools and servers are in place"

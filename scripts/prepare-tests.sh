#!/usr/bin/env bash
# Runs before `npm test` (the `pretest` script): makes sure everything the tests use is on this
# machine before any test starts, so a missing tool is one message at the start, never a failure
# deep in the output or a suite skipped by a hook that timed out.
#
#   1. Debian tools the tests run as a user would: curl, jq (docs/vault-setup.md's revoke command), perl,
#      openssl, nmap, keytool (Java 17), faketime, promtool (prometheus) and etcd (etcd-server); for the container image and the
#      one-node cluster: podman, runc, containerd (and ctr), debootstrap, the CNI plugins
#      (containernetworking-plugins), ip (iproute2), nsenter and gcc (the pod sandbox binary).
#      Missing ones are installed with apt-get when we are root on a machine that has it; otherwise
#      we stop with the command to run.
#   2. Go (>= 1.26), which builds the servers below from the Go module proxy.
#   3. The servers, built once per machine into ~/.cache/vault-mtls-sidecar (later runs reuse them):
#      OpenBao (or Vault), kube-apiserver + kube-controller-manager, helm, the grpc-go test peer
#      (test/peers/grpc), and the kubelet with the
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
  [curl]=curl [jq]=jq [perl]=perl [openssl]=openssl [nmap]=nmap [keytool]=default-jre-headless
  [faketime]=faketime [promtool]=prometheus [etcd]=etcd-server
  [podman]=podman [runc]=runc [containerd]=containerd [ctr]=containerd [debootstrap]=debootstrap
  [ip]=iproute2 [nsenter]=util-linux [gcc]=gcc [/usr/lib/cni/bridge]=containernetworking-plugins
)
ORDER=(curl jq perl openssl nmap keytool faketime promtool etcd podman runc containerd ctr debootstrap ip nsenter gcc /usr/lib/cni/bridge)

# A tool is a command on the PATH, or a path (the CNI plugins are not on the PATH).
# /usr/sbin and /sbin count too: a non-root user's PATH lacks them (debootstrap lives there).
have() { if [ "${1#/}" != "$1" ]; then [ -x "$1" ]; else PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null; fi; }

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

# go_problem: empty when Go >= GO_MIN is on the PATH (or in /usr/local/go/bin), else what is wrong.
# Vault's go.mod says go 1.25.3 and grpc-go's (test/peers/grpc) go 1.26.0, and GOTOOLCHAIN=local
# machines will not fetch a newer toolchain.
GO_MIN=1.26.0
go_problem() {
  command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || { printf 'Go is not installed: install Go >= %s (https://go.dev/dl)' "$GO_MIN"; return; }
  local v
  v=$(go env GOVERSION 2>/dev/null | grep -o 'go[0-9][0-9.]*' | head -n 1) || true
  [ -n "$v" ] || { printf 'Go at %s does not run (`go env GOVERSION` failed): reinstall Go >= %s' "$(command -v go)" "$GO_MIN"; return; }
  v=${v#go}
  [ "$(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -n 1)" = "$GO_MIN" ] ||
    printf 'Go %s is too old: install Go >= %s (https://go.dev/dl)' "$v" "$GO_MIN"
}

# cached SCRIPT: prints what the install script has cached, or fails when it would have to build.
cached() { CACHED_ONLY=1 "$1" 2>/dev/null | tail -n 1; return "${PIPESTATUS[0]}"; }

# What is already built decides whether Go is needed at all (a machine with every build cached
# needs no Go). BAO_BIN (a bao or vault binary of yours) replaces the OpenBao build.
BUILDS=(
  "OpenBao/Vault server|scripts/install-openbao.sh|building from the Go module proxy (first run on this machine only)"
  "kube-apiserver and kube-controller-manager|scripts/install-kubernetes.sh|building from the Go module proxy (first run on this machine only)"
  "helm|scripts/install-helm.sh|building from the Go module proxy (first run on this machine only)"
  "grpc-go test peer|scripts/install-grpc-peer.sh|building test/peers/grpc from the Go module proxy (again whenever its source changes)"
  "kubelet and the pod sandbox image|scripts/install-kubelet.sh|building from the Go module proxy (first run on this machine only)"
  "base image node:24-bookworm-slim|scripts/install-base-image.sh|making it with debootstrap and the npm registry's Node 24 (first run on this machine only)"
  "product image|scripts/install-image.sh|podman build of the Dockerfile (again whenever what goes into the image changes: Dockerfile, package files, src/, the base image, the build scripts)"
)
if [ -n "${BAO_BIN:-}" ]; then
  command -v "$BAO_BIN" >/dev/null || fail "BAO_BIN=$BAO_BIN is not an executable; point it at a bao or vault binary, or unset it"
  BUILDS=("${BUILDS[@]:1}")
fi
needs_go=0
for entry in "${BUILDS[@]}"; do
  IFS='|' read -r _ script _ <<<"$entry"
  case "$script" in *openbao*|*kubernetes*|*helm*|*grpc-peer*|*kubelet*) cached "$script" >/dev/null || needs_go=1 ;; esac
done

# Every problem a user must fix by hand, in one message, before anything is installed or built.
mapfile -t needed < <(missing_packages)
problems=()
gp=""
[ "$needs_go" = 1 ] && gp=$(go_problem)
[ -n "$gp" ] && problems+=("$gp")
as_root=0
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && as_root=1
if [ "${#needed[@]}" -gt 0 ] && [ "$as_root" = 0 ]; then
  if command -v apt-get >/dev/null; then
    problems+=("Debian packages are not installed: ${needed[*]}; as root run: $(install_command "${needed[@]}") (for example with su -c '…' or sudo sh -c '…')")
  else
    problems+=("tools are not installed: $(for t in "${ORDER[@]}"; do have "$t" || printf '%s ' "$t"; done)(Debian packages: ${needed[*]}); install them with your package manager")
  fi
fi
# The image and pod tests run podman, containerd and a kubelet, which need root.
[ "$(id -u)" = 0 ] || problems+=("the image and pod tests (test/e2e/image-contract, test/cluster) run podman, containerd and a kubelet, which need root: run npm test as root (in a VM or a disposable container)")
if [ "${#problems[@]}" -gt 0 ]; then
  joined=$(printf '%s; ' "${problems[@]}")
  printf '[prepare-tests] ERROR npm test cannot start: %s. Then rerun npm test.\n' "${joined%; }" >&2
  exit 1
fi

if [ "${#needed[@]}" -gt 0 ]; then
  say "installing Debian packages the tests use: ${needed[*]} (first run only)"
  started=$SECONDS
  apt_log=$(mktemp -t prepare-tests-apt.XXXXXX)
  if ! DEBIAN_FRONTEND=noninteractive bash -c "$(install_command "${needed[@]}" | sed 's/apt-get /apt-get -qq /g')" >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    fail "apt-get could not install ${needed[*]} (log: $apt_log); fix the package source and rerun npm test"
  fi
  rm -f "$apt_log"
  mapfile -t still < <(missing_packages)
  [ "${#still[@]}" -eq 0 ] || fail "installed, but still not found: ${still[*]}; check the packages and rerun npm test"
  say "installed in $((SECONDS - started))s"
fi

# build LABEL SCRIPT HOW: runs an idempotent install script, reporting time only when it had work
# to do, and checks afterwards that the tests will find what it built.
build() {
  local label=$1 script=$2 how=$3 started=$SECONDS out
  if out=$(cached "$script"); then
    say "$label: ready ($out)"
    return
  fi
  say "$label: $how"
  "$script" >/dev/null || fail "$label: $script failed (its output is above); fix what it names and rerun npm test"
  out=$(cached "$script") || fail "$label: $script finished but the tests cannot find its result (is HOME writable? did files that go into it change during the build?); rerun npm test"
  say "$label: built in $(((SECONDS - started) / 60))m$(((SECONDS - started) % 60))s ($out)"
}

[ -n "${BAO_BIN:-}" ] && say "OpenBao/Vault server: BAO_BIN=$BAO_BIN"
for entry in "${BUILDS[@]}"; do
  IFS='|' read -r label script how <<<"$entry"
  build "$label" "$script" "$how"
done
say "ready: tools and servers are in place"

# Sourced by the scripts that build test and bench peers from the Go module proxy
# (scripts/install-kubernetes.sh, scripts/install-helm.sh, bench/install-ghostunnel.sh).

# log MESSAGE: progress on stderr, named after the script (stdout carries only the result).
log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# peer_cache NAME VERSION: where a built peer is kept, outside the repository, once per machine.
# A relative XDG_CACHE_HOME is ignored, as the XDG spec says (the scripts build in other directories).
cache_root() { case "${XDG_CACHE_HOME:-}" in /*) printf '%s\n' "$XDG_CACHE_HOME/vault-mtls-sidecar" ;; *) printf '%s\n' "$HOME/.cache/vault-mtls-sidecar" ;; esac; }
peer_cache() { printf '%s\n' "$(cache_root)/$1/$2"; }

# not_built_yet: with CACHED_ONLY=1 (how the tests call the install scripts) a peer that is not in
# the cache is an error, never a build inside a test hook's timeout.
not_built_yet() {
  [ -z "${CACHED_ONLY:-}" ] && return 0
  log "not built yet: run scripts/prepare-tests.sh (npm test runs it first)"
  exit 3
}

# require_go WHAT: puts Go on PATH (the machine's /usr/local/go) or fails naming what needed it.
require_go() {
  command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || { log "Go is required to build $1"; exit 1; }
}

# writable_module_copy MODULE@VERSION DIR: downloads the module's source through the proxy and
# copies it to DIR/src, writable (the module cache is read-only), for `go build` there.
writable_module_copy() {
  local dir
  log "downloading $1"
  dir=$(cd / && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || true
  [ -n "$dir" ] || { log "the Go module proxy did not serve $1"; exit 1; }
  cp -r "$dir" "$2/src" && chmod -R u+w "$2/src"
}

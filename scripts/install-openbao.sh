#!/usr/bin/env bash
# Builds the Vault-compatible server used by the integration tests from the Go module proxy and
# caches it outside the repository, so only the first run on a machine pays for the build.
#
# OpenBao is preferred. Its release tags carry the module path without /v2, so the proxy refuses
# `@v2.6.2`; we ask for the release commit instead. Where the proxy does not serve OpenBao at all
# (it answers 403 "not available" on some networks), we build HashiCorp Vault's module at a v1.x
# tag, which has the same API and the same `server -dev` mode.
#
# Both go.mod files replace their own nested modules (api/, api/auth/*, sdk/, ...) with local
# directories that a module download does not contain, so we drop those replace directives and let
# the modules resolve from the proxy.
#
# Prints the path of the binary on its last line (stdout); progress goes to stderr. Idempotent.
# CACHED_ONLY=1: print the cached binary or exit 3, never build (the tests' own use).
set -euo pipefail

OPENBAO_VERSION="${OPENBAO_VERSION:-2.6.2}"
OPENBAO_COMMIT="${OPENBAO_COMMIT:-dd9c19c37a878cf4a81b18efb8d6f0599c7da923}"
VAULT_VERSION="${VAULT_VERSION:-1.21.4}"
case "${XDG_CACHE_HOME:-}" in /*) CACHE_ROOT="$XDG_CACHE_HOME/vault-mtls-sidecar" ;; *) CACHE_ROOT="$HOME/.cache/vault-mtls-sidecar" ;; esac

log() { printf '[install-openbao] %s\n' "$*" >&2; }

for cached in "$CACHE_ROOT/openbao/$OPENBAO_VERSION/bao" "$CACHE_ROOT/vault/$VAULT_VERSION/vault"; do
  if [ -x "$cached" ] && "$cached" version >/dev/null 2>&1; then
    log "cached: $("$cached" version)"
    echo "$cached"
    exit 0
  fi
done

if [ -n "${CACHED_ONLY:-}" ]; then log "not built yet: run scripts/prepare-tests.sh (npm test runs it first)"; exit 3; fi

command -v go >/dev/null || { log "Go is required to build OpenBao or Vault (install Go >= 1.25)"; exit 1; }

# download MODULE@VERSION -> prints the read-only source directory, or nothing when refused.
download() {
  go mod download -json "$1" 2>/dev/null | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

log "downloading github.com/openbao/openbao@${OPENBAO_COMMIT} (v${OPENBAO_VERSION})"
SRC_RO=$(cd / && download "github.com/openbao/openbao@${OPENBAO_COMMIT}" || true)
if [ -n "$SRC_RO" ] && [ -d "$SRC_RO" ]; then
  NAME=openbao; OUT="$CACHE_ROOT/openbao/$OPENBAO_VERSION/bao"
else
  log "the module proxy does not serve OpenBao here; building HashiCorp Vault v${VAULT_VERSION} instead"
  SRC_RO=$(cd / && download "github.com/hashicorp/vault@v${VAULT_VERSION}" || true)
  [ -n "$SRC_RO" ] && [ -d "$SRC_RO" ] || { log "neither OpenBao nor Vault could be downloaded from the Go module proxy"; exit 1; }
  NAME=vault; OUT="$CACHE_ROOT/vault/$VAULT_VERSION/vault"
fi

WORK=$(mktemp -d)
trap 'chmod -R u+w "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp -r "$SRC_RO" "$WORK/src"
chmod -R u+w "$WORK/src"
cd "$WORK/src"

# Drop every replace directive that points at a local directory (=> ./api, => ./sdk, ...).
for mod in $(awk '$1 == "replace" && $4 ~ /^\.\// {print $2} $1 != "replace" && $2 == "=>" && $3 ~ /^\.\// {print $1}' go.mod | sort -u); do
  log "dropping local replace of $mod"
  go mod edit -dropreplace="$mod"
done

# Vault's own sdk/ is newer than its last published tag in a few signatures, so the module from the
# proxy needs a pinned sdk and three small source adjustments. Each is checked, so a version bump
# that no longer needs one fails loudly instead of building something else.
patch_source() { # FILE OLD NEW
  OLD="$2" NEW="$3" perl -0pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$1"
  grep -qF -- "$3" "$1" || { log "could not adjust $1; this script knows Vault v1.21.4 only"; exit 1; }
}
if [ "$NAME" = vault ]; then
  log "pinning github.com/hashicorp/vault/sdk@v0.21.0 and adjusting three call sites to it"
  go mod edit -require=github.com/hashicorp/vault/sdk@v0.21.0
  patch_source vault/identity_store.go \
    'ActivationFunc: iStore.activateDeduplication,' \
    'ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },'
  patch_source vault/logical_system_activation_flags.go \
    'b.idStoreBackend.ActivationFunc(ctx, nil)' \
    'b.idStoreBackend.ActivationFunc(ctx, nil, "")'
  patch_source builtin/logical/transit/path_restore.go \
    'restoredKeyName, err := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)' \
    'restoredKeyName := keyName; err := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)'
fi

log "building $NAME (several minutes on the first run; cached afterwards)"
mkdir -p "$(dirname "$OUT")"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$WORK/server" .
mv "$WORK/server" "$OUT"
log "built: $("$OUT" version)"
echo "$OUT"

#!/usr/bin/env bash
# npm run bench: installs what the benchmark needs (nginx-light and wrk from Debian, ghostunnel
# built from the Go module proxy), builds the sidecar, and runs bench/mesh.mjs on the node that npm
# puts first on PATH (the project's Node 24, node_modules/.bin/node). Loopback addresses only;
# every load run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "[bench] installing nginx-light and wrk" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
BENCH_GHOSTUNNEL=$(bench/install-ghostunnel.sh | tail -n 1)
export BENCH_GHOSTUNNEL
npm run build >/dev/null
exec node bench/mesh.mjs "$@"

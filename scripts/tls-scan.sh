#!/usr/bin/env bash
# Scans a TLS listener with nmap's ssl-enum-ciphers and fails on anything weaker than the sidecar's
# policy: a CBC suite, a static-RSA (no forward secrecy) suite, a protocol below TLS 1.2, or any
# suite nmap grades below A. Prints nmap's report, then one verdict line.
#
#   scripts/tls-scan.sh HOST PORT
#
# Needs nmap (Debian: apt-get install nmap). A client certificate is not needed: the suites are
# enumerated from the ServerHello, before the server asks for one.
set -euo pipefail
host="${1:?usage: tls-scan.sh HOST PORT}"
port="${2:?usage: tls-scan.sh HOST PORT}"

report="$(nmap -Pn -n --script ssl-enum-ciphers -p "$port" "$host")"
echo "$report"

problems=()
grep -qE 'TLSv1\.[01]:|SSLv' <<<"$report" && problems+=("a protocol below TLS 1.2 is offered")
grep -qE 'TLS_[A-Z0-9_]+_CBC_' <<<"$report" && problems+=("a CBC suite is offered")
grep -qE 'TLS_RSA_WITH_' <<<"$report" && problems+=("a static-RSA suite (no forward secrecy) is offered")
# Each suite line ends in its grade; the summary line says the weakest.
grep -qE '^\|.*(TLS_[A-Z0-9_]+).* - [B-F]$' <<<"$report" && problems+=("a suite graded below A is offered")
grep -qE 'least strength: [B-F]' <<<"$report" && problems+=("nmap's least strength is below A")
grep -qE 'TLS_' <<<"$report" || problems+=("nmap enumerated no suite (is the port a TLS listener?)")

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'TLS SCAN FAILED: %s\n' "${problems[@]}"
  exit 1
fi
echo "TLS SCAN PASSED: TLS 1.2+ with ECDHE and AEAD suites only, all graded A"

#!/usr/bin/env bash
# Installs the Debian packages callcore's sandbox and tests need (espeak-ng + sox render the
# voice prompts, see docs/prompts.md; kamailio balances calls over two sandbox nodes in the scale-out
# test, docs/scaling.md). Extra package names as arguments (e.g. tshark for the benchmarks).
# Idempotent; quiet when all are present.
set -euo pipefail
need=()
for pkg in debootstrap sip-tester tcpdump espeak-ng sox chromium kamailio "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "callcore: missing Debian packages: ${need[*]} — install them as root (apt-get install ${need[*]})" >&2
  exit 1
fi
echo "callcore: installing ${need[*]} (apt-get)…"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null

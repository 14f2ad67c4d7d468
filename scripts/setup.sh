#!/usr/bin/env bash
# Installs what capturing and testing need on a fresh Debian machine with the .NET SDK.
# Idempotent: installs only what is missing. Needs root (apt-get).
set -euo pipefail

packages=(libpcap0.8 tcpdump tshark iproute2 nftables iptables ethtool libcap2-bin curl python3 procps tcpreplay)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

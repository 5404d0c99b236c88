#!/usr/bin/env bash
# Install what building and testing ferry needs on Debian 12 (apt-get), only what is missing.
# Runs apt-get as root, through sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libyaml-dev libcmocka-dev clang curl netcat-openbsd)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "ferry: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Install the Debian packages msvmm needs to build, test and benchmark.
# Idempotent and quiet when nothing is missing.
set -euo pipefail
pkgs=(gcc make pkg-config libelf-dev zlib1g-dev libcap-ng-dev check cpio
      busybox-static linux-source-6.1 flex bison bc libssl-dev xz-utils
      e2fsprogs debootstrap lz4 patch qemu-system-x86)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

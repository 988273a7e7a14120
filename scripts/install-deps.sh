#!/usr/bin/env bash
# Installs the Debian packages ringflow needs, only those missing. Idempotent; needs root
# (or sudo) when something is missing. Usage: scripts/install-deps.sh [build|demo]
set -euo pipefail
what=${1:-build}
pkgs=(g++ clang-14 libclang-rt-14-dev make cmake ninja-build pkg-config git
      libtbb-dev libhwloc-dev hwloc-nox libjemalloc-dev libtomlplusplus-dev libcli11-dev
      libgtest-dev libbenchmark-dev libboost-dev libreaderwriterqueue-dev libconcurrentqueue-dev
      libnats-dev nats-server prometheus-cpp-dev tmux libisal-dev libssl-dev nlohmann-json3-dev)
if [ "$what" = demo ]; then
  pkgs+=(python3 python3-matplotlib)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "ringflow: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "ringflow: run as root: apt-get install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

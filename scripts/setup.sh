#!/usr/bin/env bash
# Quick start, step 1: installs the Debian packages that are missing, builds
# Perseus into build/ and runs `perseus demo` on the shipped profile.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake g++ pkg-config
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libsqlite3-dev
  pybind11-dev python3-dev python3-pytest python3-torch
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPERSEUS_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
echo
build/bin/perseus demo

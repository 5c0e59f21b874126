#!/usr/bin/env bash
# Configures and builds Tandem into build/ (Release flags, warnings as errors).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON "$@" >/dev/null
cmake --build build -j"$jobs"

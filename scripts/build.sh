#!/usr/bin/env bash
# Configures and builds Tandem into build/ (Release flags, warnings as errors; the CUDA backend when nvcc exists).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
# The CUDA backend is built wherever the CUDA toolkit is (no GPU needed to build; tests that need one skip).
cuda=OFF
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then cuda=ON; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON -DTANDEM_CUDA=$cuda "$@" >/dev/null
cmake --build build -j"$jobs"

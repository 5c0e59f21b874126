#!/usr/bin/env bash
# Builds Tandem and runs the whole test suite (unit tests, fixture checks, bounded fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900

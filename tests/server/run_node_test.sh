#!/usr/bin/env bash
# Runs one tests/server/*.test.mjs file with `node --test` against a tandem binary.
# Exit 77 (CTest: skipped) without ../shared (the fixture model), node >= 20, or (for files that import
# `openai`) tests/server/node_modules.
# usage: run_node_test.sh TEST_FILE [TANDEM_BINARY]     (default binary: $TANDEM_BIN)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
file="$1"
bin="${2:-${TANDEM_BIN:-}}"
fixture="${TANDEM_FIXTURE_DIR:-$here/../../../shared/fixtures/models/tiny-dsv3-bf16}"
if [ ! -f "$fixture/model.gguf" ]; then
  echo "SKIP: fixture model not found at $fixture (../shared beside the checkout)"; exit 77
fi
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "SKIP: node >= 20 is needed"; exit 77
fi
if grep -q "from 'openai'" "$here/$file" && [ ! -f "$here/node_modules/openai/package.json" ]; then
  echo "SKIP: tests/server/node_modules is missing (run tests/server/npm_install.sh; the npm registry was unreachable?)"; exit 77
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then echo "FAIL: no tandem binary (argument 2 or TANDEM_BIN)"; exit 1; fi
export TANDEM_BIN="$bin"
cd "$here"
exec node --test --test-reporter=spec "$file"

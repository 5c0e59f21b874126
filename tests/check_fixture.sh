#!/usr/bin/env bash
# Runs ../shared/tools/check_fixture.py on one fixture model; exit 77 (CTest: skipped) without ../shared.
# usage: check_fixture.sh FIXTURE TANDEM_BINARY [extra eval flags...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared="$here/../../shared"
fixture="$1"; bin="$2"; shift 2
if [ ! -f "$shared/tools/check_fixture.py" ] || [ ! -d "$shared/fixtures/models/$fixture" ]; then
  echo "SKIP: ../shared/fixtures/models/$fixture not found beside the checkout"
  exit 77
fi
exec python3 "$shared/tools/check_fixture.py" "$shared/fixtures/models/$fixture" -- \
  "$bin" eval --gguf '{dir}/model.gguf' --model-path '{dir}' "$@"

#!/usr/bin/env bash
# Placement rules that name a device this build or machine lacks stop `tandem eval` / `serve` at start-up
# with a message naming the rule (exit status 1: no abort, no CLI parse error). Skipped (77) in a build
# that has a usable GPU, where these rules are valid.
# usage: placement_refused.sh TANDEM_BINARY RULES_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$1"; rules="$2"
dir="$here/../../shared/fixtures/models/tiny-dsv3-q4km"
if [ ! -f "$dir/model.gguf" ]; then echo "SKIP: $dir not found"; exit 77; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo '{"cases":[{"ids":[1,2,3]}]}' > "$tmp/cases.json"
fail=0
expect_refusal() {  # expected-text args...
  local want="$1"; shift
  "$bin" eval --gguf "$dir/model.gguf" --model-path "$dir" --cases "$tmp/cases.json" \
    --json-out "$tmp/out.json" --logits-out "$tmp/out.f32" "$@" >"$tmp/log" 2>&1
  local rc=$?
  if [ "$rc" -ne 1 ] || ! grep -qE -- "$want" "$tmp/log"; then
    echo "FAIL: $* exited $rc; expected 1 and a message containing '$want':"; tail -5 "$tmp/log"; fail=1
  else
    echo "ok: $* -> $(grep -E -- "$want" "$tmp/log" | head -1)"
  fi
}
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then echo "SKIP: a GPU is present (the rules may be valid)"; exit 77; fi
# A build without CUDA says so; a CUDA build on a machine without a GPU says that.
no_gpu="no CUDA backend|no usable CUDA device|no CUDA device"
expect_refusal "$no_gpu" --optimize_config_path "$rules/deepseek-v3.yaml"
expect_refusal "$no_gpu" --optimize_config_path "$rules/deepseek-v3-80gb.yaml"
expect_refusal "$no_gpu" -ot "exps=CUDA0"
expect_refusal "$no_gpu" --device cuda
expect_refusal "unknown device" -ot "exps=TPU"
expect_refusal "invalid regular expression" --override-tensor "(=cpu"
expect_refusal "unknown device" --device tpu
expect_refusal "cannot open" --optimize_config_path "$tmp/missing.yaml"
exit $fail

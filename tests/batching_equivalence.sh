#!/usr/bin/env bash
# Runs `tandem eval` on a fixture's prompts twice: concurrently (--max-batch-size 4 --chunk-size 16
# --cache-lens 512 --page-size 16: chunks split every prompt, the pool cannot hold every case at once)
# and one request at a time; the greedy ids and the logits must be identical, bit for bit.
# usage: batching_equivalence.sh FIXTURE TANDEM_BINARY [extra eval flags...]   (exit 77 = skipped without ../shared)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/../../shared/fixtures/models/$1"; bin="$2"; shift 2
if [ ! -f "$dir/ref.json" ]; then echo "SKIP: $dir not found"; exit 77; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); json.dump({'cases':[{'ids':c['ids']} for c in r['cases']]}, open(sys.argv[2],'w'))" \
  "$dir/ref.json" "$tmp/cases.json"
common=(eval --gguf "$dir/model.gguf" --model-path "$dir" --cases "$tmp/cases.json" --greedy 32 "$@")
"$bin" "${common[@]}" --max-batch-size 4 --chunk-size 16 --cache-lens 512 --page-size 16 \
  --json-out "$tmp/batched.json" --logits-out "$tmp/batched.f32" 2>"$tmp/batched.log"
"$bin" "${common[@]}" --max-batch-size 1 --json-out "$tmp/solo.json" --logits-out "$tmp/solo.f32" 2>"$tmp/solo.log"
grep -h "steps" "$tmp/batched.log" "$tmp/solo.log" || true
cmp "$tmp/batched.json" "$tmp/solo.json" && cmp "$tmp/batched.f32" "$tmp/solo.f32"
echo "PASS: batched and solo runs are identical (greedy ids and logits)"

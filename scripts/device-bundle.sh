#!/usr/bin/env bash
# Packs what a run on the GPU box needs into .device/ (git-ignored), for the device tool's `carry`:
# the tandem binary built here (stripped) and the shared libraries it needs that the box lacks (the
# Debian packages' fmt, spdlog, yaml-cpp, PCRE2, ICU, cpp-httplib, OpenSSL, ...), compressed.
# On the box: tar xf .device/bundle.tar.xz -C /tmp && LD_LIBRARY_PATH=/tmp/bundle/lib /tmp/bundle/tandem ...
# usage: scripts/device-bundle.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
out=.device/bundle
rm -rf "$out" && mkdir -p "$out/lib"
cp "$build/tandem" "$out/tandem" && strip "$out/tandem"
for f in "$build"/bench/matmul_bench; do [ -x "$f" ] && cp "$f" "$out/" && strip "$out/$(basename "$f")"; done
# Every library but the C and C++ runtimes (the box has its own, at least as new).
ldd "$build/tandem" "$build/bench/matmul_bench" 2>/dev/null | awk '/=> \//{print $3}' | sort -u |
  grep -vE '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$out/lib/"; done
tar -C .device -cJf .device/bundle.tar.xz bundle
du -sh .device/bundle .device/bundle.tar.xz

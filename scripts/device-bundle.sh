#!/usr/bin/env bash
# Packs what a run on the GPU box needs into .device/ (git-ignored), for the device tool's `carry`:
# the tandem binary built here (stripped; with -DTANDEM_CUDA=ON for the GPU, the CUDA runtime linked in
# statically), the kernel conformance tests, and the shared libraries they need that the box lacks (the
# Debian packages' fmt, spdlog, yaml-cpp, PCRE2, ICU, cpp-httplib, OpenSSL, ...), compressed; with
# --fixtures, each fixture model of ../shared as .device/fixture-NAME.tar.xz (one per call: the device tool
# carries at most 64 MiB), and the fixture checker.
# On the box: tar xf .device/bundle.tar.xz -C /tmp && LD_LIBRARY_PATH=/tmp/bundle/lib /tmp/bundle/tandem ...
#             mkdir -p ../shared/fixtures/models && tar xf .device/fixture-NAME.tar.xz -C ../shared
# usage: scripts/device-bundle.sh [BUILD_DIR] [--fixtures]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
out=.device/bundle
rm -rf "$out" && mkdir -p "$out/lib"
cp "$build/tandem" "$out/tandem" && strip "$out/tandem"
for f in "$build"/bench/matmul_bench "$build"/bench/cuda_kernel_bench "$build"/src/kernels/kernels_test "$build"/src/kernels/cpu/kernels_cpu_test; do
  [ -x "$f" ] && cp "$f" "$out/" && strip "$out/$(basename "$f")"
done
# Every library but the C and C++ runtimes (the box has its own, at least as new).
ldd "$build/tandem" "$build/bench/matmul_bench" "$build/src/kernels/kernels_test" 2>/dev/null | awk '/=> \//{print $3}' | sort -u |
  grep -vE '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$out/lib/"; done
tar -C .device -cJf .device/bundle.tar.xz bundle
du -sh .device/bundle .device/bundle.tar.xz
if [ "${2:-}" = "--fixtures" ]; then
  for dir in ../shared/fixtures/models/*/; do
    name=$(basename "$dir")
    tar -C ../shared -cf - tools/check_fixture.py "fixtures/models/$name" | xz -T2 -3 > ".device/fixture-$name.tar.xz"
  done
  du -sh .device/fixture-*.tar.xz
fi

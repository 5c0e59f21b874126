#!/bin/sh
# Bounded libFuzzer run of the GGUF reader (the CTest test gguf_fuzz_bounded).
#   run_fuzz.sh run FUZZER WORK_DIR SECONDS
#       fuzz with a built gguf_fuzz; new inputs go to WORK_DIR/gguf_corpus, crashes to WORK_DIR/artifacts.
#   run_fuzz.sh build-and-run CLANGXX BUILD_DIR SECONDS
#       first build this folder standalone with CLANGXX into BUILD_DIR (incremental), then run as above
#       for SECONDS minus the build time (at least 15 s).
# Exits nonzero when the build fails or the fuzzer finds a crash, leak, timeout or sanitizer report.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=$1
seconds=$4

if [ "$mode" = build-and-run ]; then
  clangxx=$2
  build_dir=$3
  start=$(date +%s)
  generator=""
  if command -v ninja >/dev/null 2>&1; then generator="-G Ninja"; fi
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    # shellcheck disable=SC2086
    cmake -S "$here" -B "$build_dir" $generator -DCMAKE_CXX_COMPILER="$clangxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  cmake --build "$build_dir" --target gguf_fuzz
  elapsed=$(( $(date +%s) - start ))
  seconds=$(( seconds - elapsed ))
  [ "$seconds" -lt 15 ] && seconds=15
  fuzzer=$build_dir/gguf_fuzz
  work_dir=$build_dir
elif [ "$mode" = run ]; then
  fuzzer=$2
  work_dir=$3
else
  echo "usage: $0 run FUZZER WORK_DIR SECONDS | build-and-run CLANGXX BUILD_DIR SECONDS" >&2
  exit 2
fi

mkdir -p "$work_dir/gguf_corpus" "$work_dir/artifacts"
echo "fuzzing $fuzzer for $seconds s"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -dict="$here/gguf.dict" -artifact_prefix="$work_dir/artifacts/" -print_final_stats=1 \
  "$work_dir/gguf_corpus" "$here/corpus"

#!/usr/bin/env bash
# Runs the command when this machine has a usable NVIDIA GPU, else exits 77 (CTest: skipped) saying so.
# usage: gpu_or_skip.sh COMMAND [ARGS...]
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIP: no GPU on this machine (the CUDA backend's tests run on a GPU box: see the README)"
  exit 77
fi
exec "$@"

#!/usr/bin/env bash
# Installs the Debian 12 packages Tandem builds and tests with (only those missing).
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config python3 clang libclang-rt-14-dev
          libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
          libpcre2-dev libicu-dev libcpp-httplib-dev libyaml-cpp-dev libssl-dev openssl curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (tests drive the server with the openai npm client): any install will do, e.g. NodeSource's
# nodejs that bundles npm, so only ask Debian for them when the commands are missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

#!/usr/bin/env bash
# Configures and builds medmon.   build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build}; shift || true
cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$DIR" -j"$(nproc)"

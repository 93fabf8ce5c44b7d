#!/usr/bin/env bash
# The main job: installs what is missing, builds, and analyses the bundled demo capture with the
# bundled site policy. Events go to out/demo-events.jsonl; a summary is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
mkdir -p out
args=(analyze pcaps/demo/demo.pcap --out out/demo-events.jsonl --fail-on none)
[ -f policies/sites/demo-site.yaml ] && args+=(--site policies/sites/demo-site.yaml)
build/sensor/cli/medmon "${args[@]}"
echo "events written to out/demo-events.jsonl"

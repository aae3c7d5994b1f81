#!/usr/bin/env bash
# The main job on the embedded default: record the bundled payment service while it
# processes settlements, with a slow-storage incident injected into settlement 4821, then
# show the slowest settlements with the kernel events joined to them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "make demo loads eBPF programs: run it as root (sudo make demo)" >&2
  exit 1
fi
data=${KPROBE_DEMO_DATA:-${TMPDIR:-/tmp}/kprobe-demo}
incident=${KPROBE_DEMO_INCIDENT:-slow-storage}
port=${KPROBE_DEMO_OTLP_PORT:-14317}
rm -rf "$data"
mkdir -p "$data"
echo "== recording settlement-svc (incident: $incident on settlement 4821) into $data"
bin/kprobe-agent standalone --data "$data" --otlp-grpc "127.0.0.1:$port" --otlp-http "" -- \
  bin/kprobe-demo --otlp "127.0.0.1:$port" --ledger "$data/ledger.log" \
    --settlements 24 --first-settlement 4810 --incident "$incident" --incident-settlement 4821
echo
echo "== slowest settlements, down to the kernel"
bin/kprobe-tui settlements --data "$data" --top 3 --events 4
echo
echo "Dig further:  bin/kprobe-tui events --data $data --settlement 4821 | head"

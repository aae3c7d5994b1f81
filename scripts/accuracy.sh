#!/usr/bin/env bash
# Diagnosis accuracy: every incident of the demo service, recorded by the real eBPF agent
# on the embedded default, RUNS times each (default 5); prints top-1 and top-3 accuracy of
# `kprobe-tui chain` per scenario (the table BENCHMARKS.md cites). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
out=$(realpath -m "${ACCURACY_OUT:-accuracy.out}")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rm -f "$out"
KPROBE_ACCURACY_RUNS=$runs KPROBE_ACCURACY_OUT="$out" \
  go test -count=1 -timeout 60m -run '^TestAccuracy$' -v ./cmd/kprobe-demo/ >"$log" 2>&1 || true
if [ ! -s "$out" ]; then
  echo "accuracy: the runs did not finish:" >&2
  tail -50 "$log" >&2
  exit 1
fi
grep -E 'ranks [0-9]|accuracy_test.go:[0-9]+: ' "$log" | cut -c1-300 || true   # the misses and failed runs, if any
cat "$out"

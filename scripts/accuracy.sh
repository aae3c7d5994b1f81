#!/usr/bin/env bash
# Diagnosis accuracy: every incident of the demo service, recorded by the real eBPF agent
# on the embedded default, RUNS times each (default 5); prints top-1 and top-3 accuracy of
# `kprobe-tui chain` per scenario (the table BENCHMARKS.md cites). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
out=${ACCURACY_OUT:-accuracy.out}
KPROBE_ACCURACY_RUNS=$runs KPROBE_ACCURACY_OUT="$PWD/$out" \
  go test -count=1 -timeout 60m -run '^TestAccuracy$' ./cmd/kprobe-demo/ >/dev/null || true
cat "$out"

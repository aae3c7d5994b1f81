#!/usr/bin/env bash
# Runs the benchmarks BENCHMARKS.md cites, -count=6 each, and summarises them with
# benchstat. Baselines run side by side in the same run (sub-benchmarks named baseline*).
# BENCH=regexp narrows the set; COUNT overrides the repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-6}
bench=${BENCH:-.}
out=${BENCH_OUT:-bench.out}
: > "$out"
for pkg in ./bpf/ ./replay/ ./replay/sandbox/ ./pipeline/recorder/ ./pipeline/event/ ./pipeline/correlate/ ./pipeline/eventlog/ ./pipeline/transport/kafka/ ./pipeline/engine/ ./ui/ ./cmd/kprobe-tui/ ./pipeline/graphstore/graphbench/ ./api/server/; do
  [ -d "$pkg" ] || continue
  echo "== $pkg" >&2
  go test -run='^$' -bench="$bench" -benchmem -count="$count" -timeout 60m "$pkg" | tee -a "$out"
done
# The causal engine on one core (engine and feeder share it), a fixed event count so the
# stream's settlements are all drawn.
echo "== ./pipeline/causal/ (-cpu 1)" >&2
go test -run='^$' -bench="$bench" -benchmem -count="$count" -cpu 1 -benchtime 300000x -timeout 60m ./pipeline/causal/ | tee -a "$out"
go tool benchstat "$out"

#!/usr/bin/env bash
# Fails when the generated files differ from what `make generate` just rebuilt from the
# committed inputs. It never reads the running kernel: bpf/headers/vmlinux.h is pinned
# (refresh it with `make vmlinux`), so machines with another kernel build agree.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git diff --quiet -- bpf/headers/vmlinux.h; then
  echo "bpf/headers/vmlinux.h changed during generate: it is a pinned input, refreshed only by 'make vmlinux'" >&2
  exit 1
fi
# Every generated file: bpf2go objects and Go, protobuf code.
gen=$(git ls-files -- '*_bpfel.go' '*_bpfel.o' '*.pb.go' '*.connect.go')
untracked=$(git ls-files --others --exclude-standard -- '*_bpfel.go' '*_bpfel.o' '*.pb.go' '*.connect.go')
if [ -n "$untracked" ]; then
  echo "generate produced files that are not committed: $untracked" >&2
  exit 1
fi
if ! git diff --exit-code --stat -- $gen; then
  echo "generated files are stale: run 'make generate' and commit the result" >&2
  exit 1
fi

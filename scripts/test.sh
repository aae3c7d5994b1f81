#!/usr/bin/env bash
# Runs every test against the real kernel and real services (started by `make test`), under
# the race detector; the binaries the end-to-end tests start are built with it too (see
# goBuild in cmd/kprobe-agent and cmd/kprobe-tui). Measured on 2 shared cores: the whole run
# took about 20 minutes with -race, well inside the 90-minute budget, so no package is
# exempted (the eBPF-heavy ones included).
# Fails on any failure and on any skip that scripts/allowed-skips.txt does not allow.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o .bin/testsummary ./scripts/testsummary
set +e
go test -race -json -count=1 -timeout 45m -p 2 ./... 2>&1 | .bin/testsummary scripts/allowed-skips.txt
rc=${PIPESTATUS[1]}
set -e
exit "$rc"

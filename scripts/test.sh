#!/usr/bin/env bash
# Runs every test against the real kernel and real services (started by `make test`).
# Fails on any failure and on any skip that scripts/allowed-skips.txt does not allow.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o .bin/testsummary ./scripts/testsummary
set +e
go test -json -count=1 -timeout 30m -p 2 ./... 2>&1 | .bin/testsummary scripts/allowed-skips.txt
rc=${PIPESTATUS[1]}
set -e
exit "$rc"

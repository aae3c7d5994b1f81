#!/usr/bin/env bash
# make demo: the whole investigation on one machine.
#  1. record the bundled payment service with the real eBPF agent on the embedded default,
#     with a slow-storage incident injected into settlement 4821;
#  2. on a terminal, open the workstation on the slowest settlement; without one (CI),
#     print the slowest settlements and the causal chain, and write the incident report.
# Where eBPF cannot run here (not root, no BTF), it says so in one line and uses the
# dataset shipped in testdata/demo/ (recorded earlier by the real agent; see its README).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${KPROBE_DEMO_DATA:-${TMPDIR:-/tmp}/kprobe-demo-$(id -un)}
# The demo is the one-machine default: an embedded graph under --data, whatever cluster
# the environment names (make exports the test Neo4j's address for make test).
unset KPROBE_NEO4J_URI KPROBE_NEO4J_USER KPROBE_NEO4J_PASSWORD_FILE KPROBE_NEO4J_CA_FILE KPROBE_CLICKHOUSE_ADDR
incident=${KPROBE_DEMO_INCIDENT:-slow-storage}
port=${KPROBE_DEMO_OTLP_PORT:-14317}
reports=${KPROBE_DEMO_REPORTS:-$PWD}
dataset=testdata/demo/incident-slow-storage.kpds

why=""
if [ "$(id -u)" -ne 0 ]; then
  why="not root"
elif [ ! -r /sys/kernel/btf/vmlinux ]; then
  why="no kernel BTF (/sys/kernel/btf/vmlinux)"
fi

# A previous demo's store is replaced; anything else at that path is left alone.
if [ -e "$data" ] && [ -n "$(ls -A "$data" 2>/dev/null)" ] && [ ! -e "$data/events" ]; then
  echo "demo: $data exists and holds no kprobe store: set KPROBE_DEMO_DATA to a directory of its own" >&2
  exit 1
fi
rm -rf "$data"
mkdir -p "$data"
# The service's command line; the replay form proposes it with --otlp= (a replay must
# not send spans to the collector).
service=(bin/kprobe-demo --ledger "$data/ledger.log" --settlements 24 --first-settlement 4810
  --incident "$incident" --incident-settlement 4821)
replay_program=""
if [ -z "$why" ]; then
  echo "== recording settlement-svc (incident: $incident on settlement 4821) into $data"
  # --flight-recorder keeps what a replay serves back (the workstation's r).
  bin/kprobe-agent standalone --data "$data" --flight-recorder --otlp-grpc "127.0.0.1:$port" --otlp-http "" -- \
    "${service[@]}" --otlp "127.0.0.1:$port"
  replay_program="${service[*]} --otlp="
else
  echo "== eBPF unavailable ($why): opening the incident recorded earlier by the real agent ($dataset)"
  bin/kprobe-tui import --data "$data" "$dataset"
fi

echo
slowest=$(bin/kprobe-tui settlements --data "$data" --top 1 | sed -n 's/^#1 settlement \([^ ]*\) .*/\1/p')
slowest=${slowest:-4821}
if [ -t 1 ] && [ -t 0 ]; then
  # The workstation: q quits, ? lists the keys, e writes the incident report here.
  bin/kprobe-tui --data "$data" --settlement "$slowest" --export-dir "$reports" \
    --replay-program "$replay_program" && exit 0
  echo "(the workstation could not open; printing instead)"
fi
echo "== slowest settlements, down to the kernel"
bin/kprobe-tui settlements --data "$data" --top 3 --events 4
echo
echo "== causal chain of settlement $slowest"
bin/kprobe-tui chain --data "$data" --settlement "$slowest" || echo "(no causal chain: see the line above)"
echo
bin/kprobe-tui report --data "$data" --settlement "$slowest" --output "$reports/incident-settlement-$slowest.md" ||
  echo "(no report: see the line above)"
echo
echo "Investigate it yourself:  bin/kprobe-tui --data $data --settlement $slowest"

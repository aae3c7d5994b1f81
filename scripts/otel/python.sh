#!/usr/bin/env bash
# python.sh installs the stock OpenTelemetry Python SDK and OTLP exporter from PyPI into a
# project-local venv under the kprobe cache, for the end-to-end tests with a real client.
# Idempotent: does nothing when the venv already holds the pinned versions. Prints the
# venv's python.
set -euo pipefail

OTEL_VERSION="${KPROBE_OTEL_PYTHON_VERSION:-1.45.2}"
venv="${KPROBE_CACHE:-${HOME:-/root}/.cache/kprobe}/otel/python-${OTEL_VERSION}"
py="$venv/bin/python"

die() { echo "python.sh: $*" >&2; exit 1; }

if [[ -x "$py" && "$(cat "$venv/.complete" 2>/dev/null)" == "$OTEL_VERSION" ]]; then
	echo "$py"
	exit 0
fi
command -v python3 >/dev/null || die "python3 not found: install Python 3 (apt-get install python3 python3-venv)"
python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 cannot make a venv: apt-get install python3-venv"
echo "python.sh: installing opentelemetry-sdk ${OTEL_VERSION} and opentelemetry-exporter-otlp into $venv ..." >&2
rm -rf "$venv"
python3 -m venv "$venv" || die "python3 -m venv $venv failed"
if ! "$py" -m pip install --quiet --disable-pip-version-check \
	"opentelemetry-sdk==${OTEL_VERSION}" "opentelemetry-exporter-otlp==${OTEL_VERSION}" >"$venv/pip.log" 2>&1; then
	tail -n 5 "$venv/pip.log" >&2
	die "pip install opentelemetry-sdk==${OTEL_VERSION} failed: is PyPI reachable? (pip config, proxy; full log $venv/pip.log)"
fi
echo "$OTEL_VERSION" >"$venv/.complete"
echo "$py"

#!/usr/bin/env bash
# Installs the Debian packages kprobe's build and tests need, when they are missing.
set -euo pipefail
need=()
command -v clang >/dev/null    || need+=(clang llvm)
command -v bpftool >/dev/null  || need+=(bpftool)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v protoc >/dev/null   || need+=(protobuf-compiler)
command -v tmux >/dev/null     || need+=(tmux)
command -v java >/dev/null     || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null      || need+=(maven)
command -v npm >/dev/null      || need+=(npm)
command -v openssl >/dev/null  || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  # Not root: one line, and go on. What needs a missing package says so itself (make demo
  # falls back to the dataset shipped in testdata/demo).
  echo "deps: not root, not installing ${need[*]} (sudo apt-get install ${need[*]})" >&2
  exit 0
fi
echo "installing: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null

#!/bin/sh
# Regenerates headers/vmlinux.h (CO-RE type definitions) from the running
# kernel's BTF. Needs bpftool and a kernel with CONFIG_DEBUG_INFO_BTF=y.
set -eu
cd "$(dirname "$0")"
bpftool btf dump file "${VMLINUX_BTF:-/sys/kernel/btf/vmlinux}" format c > headers/vmlinux.h.tmp
mv headers/vmlinux.h.tmp headers/vmlinux.h

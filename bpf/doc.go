// Package bpf records kernel events (read/write syscalls, TCP send/recv,
// scheduler switches, page faults) with CO-RE eBPF probes, filters them in
// the kernel and decodes the ring buffer into Go-native Events in batches.
package bpf

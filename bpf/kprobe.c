//go:build ignore

// CO-RE probes for the kprobe recorder, compiled as one object. Each
// concern has its header under probes/: the event layout, the shared maps,
// the one filter, and the hook families (read/write, TCP, scheduler, page
// faults).

#include "headers/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#include "probes/event.h"
#include "probes/maps.h"
#include "probes/filter.h"
#include "probes/rw.h"
#include "probes/tcp.h"
#include "probes/sched.h"
#include "probes/fault.h"

/* What every hook shares: the run-time configuration, the ring buffer with
 * its loss counters and wakeup batching, and the filter maps. */
#ifndef KPROBE_MAPS_H
#define KPROBE_MAPS_H

#define FILTER_PID 1
#define FILTER_COMM 2
#define FILTER_CGROUP 4
#define FILTER_PAYLOAD 8 /* payload_pids is non-empty */

struct config {
	__u32 filters;       /* FILTER_* bits */
	__u32 self_tgid;     /* recorder's own tgid, excluded; 0 = not excluded */
	__u32 payload_bytes; /* runtime payload limit, <= MAX_PAYLOAD */
	__u32 wakeup_bytes;  /* per CPU: wake the reader after this much submitted data; 0 = always */
	__u32 gen;           /* bumped by Go whenever a filter changes (invalidates cached verdicts) */
};

/* .bss: updated from Go at run time through the mmapped global. */
struct config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* overridden by Options.RingBytes */
} events SEC(".maps");

/* Reserve failures per event type: nothing is lost silently. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EV_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Bytes submitted on this CPU since its last forced wakeup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unwoken SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[COMM_LEN]);
	__type(value, __u8);
} filter_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} filter_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} payload_pids SEC(".maps");

static __always_inline void count_lost(__u32 type)
{
	__u64 *v = bpf_map_lookup_elem(&lost, &type);
	if (v)
		*v += 1;
}

static __always_inline void submit_sized(void *e, __u32 size)
{
	__u32 wb = cfg.wakeup_bytes;
	__u64 flags = 0;

	/* Batch wakeups: the reader also polls on a deadline, so a quiet ring
	 * is still drained. Counted per CPU (an inlined array access, where
	 * bpf_ringbuf_query would be a helper call); Go sets wakeup_bytes so
	 * that all CPUs together wake the reader every ring/8 bytes. */
	if (wb) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&unwoken, &zero);

		flags = BPF_RB_NO_WAKEUP;
		if (n) {
			*n += size;
			if (*n >= wb) {
				*n = 0;
				flags = BPF_RB_FORCE_WAKEUP;
			}
		}
	}
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void submit(struct event *e)
{
	submit_sized(e, sizeof(*e));
}

/* A zeroed event in the ring buffer, or 0 (counted as lost) when it is full. */
static __always_inline struct event *reserve(__u32 type)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(struct event), 0);
	if (!e) {
		count_lost(type);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	return e;
}

#endif

/* The one event layout every hook emits, and the constants it carries.
 * Go decodes it by fixed offsets (decode.go), which TestEventLayout pins to
 * the bpf2go-generated bpfEvent. */
#ifndef KPROBE_EVENT_H
#define KPROBE_EVENT_H

#define COMM_LEN 16
#define MAX_PAYLOAD 512 /* compile-time bound; the runtime limit is cfg.payload_bytes */

/* Keep in sync with event.go; TestEventTypesMatchProbes compares them. */
enum event_type {
	EV_READ = 1,
	EV_WRITE = 2,
	EV_TCP_SEND = 3,
	EV_TCP_RECV = 4,
	EV_SCHED_SWITCH = 5,
	EV_PAGE_FAULT = 6,
	EV_MAX = 7, /* one past the last type: sizes per-type arrays */
};

enum rw_syscall {
	SC_READ = 1,
	SC_PREAD64 = 2,
	SC_READV = 3,
	SC_WRITE = 4,
	SC_PWRITE64 = 5,
	SC_WRITEV = 6,
};

/* struct event flags */
#define FLAG_PREEMPTED 1
#define FLAG_KERNEL_FAULT 2
#define FLAG_KERNEL_WAKEUP 4 /* sched: woken from interrupt context, by no task */

struct event {
	__u64 ts_ns;      /* start of the interval (syscall entry, switch-out, fault) */
	__u64 dur_ns;
	__u64 cgroup_id;
	__u32 pid;        /* tgid */
	__u32 tid;
	__u32 cpu;
	__u8 type;        /* enum event_type */
	__u8 syscall;     /* enum rw_syscall */
	__u8 flags;
	__u8 _pad0;
	char comm[COMM_LEN];
	/* read/write family */
	__s64 ret;
	__s32 fd;
	__s32 err;
	__u64 dev;        /* kernel-internal dev_t (MAJOR<<20|MINOR) */
	__u64 ino;
	/* tcp */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 payload_len;
	/* sched */
	__u32 next_pid;
	__u32 next_tid;
	__u32 waker_pid;
	__u32 waker_tid;
	__u64 runq_ns;
	char next_comm[COMM_LEN];
	/* page fault */
	__u64 addr;
	__u64 ip;
	__u64 error_code;
};

struct event_payload {
	struct event ev;
	__u8 data[MAX_PAYLOAD];
};

/* Force BTF for bpf2go -type event -type event_type. */
const struct event *unused_event __attribute__((unused));
const enum event_type *unused_event_type __attribute__((unused));

/* comm is 16 bytes: two BTF loads instead of bpf_get_current_comm or a
 * probe read. */
static __always_inline void copy_comm(char *dst, const char *src)
{
	*(__u64 *)&dst[0] = *(__u64 *)&src[0];
	*(__u64 *)&dst[8] = *(__u64 *)&src[8];
}

#endif

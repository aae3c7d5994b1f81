//go:build ignore

// The flight recorder: for the processes selected for replay, every syscall that brings
// the outside world in or depends on it (opens, connects, accepts, reads with the bytes
// read, writes with the bytes written, readiness, randomness, sleeps), with its
// arguments, result and duration. A separate object from kprobe.c, attached only with
// --flight-recorder, so the plain recorder's per-syscall cost does not change.
//
// A call is emitted as its chunks (the bytes it moved, the path it opened: up to
// FLIGHT_CHUNK bytes each, copied through a per-CPU scratch buffer) followed by one call
// record; Go reassembles them by thread and entry time.

#include "headers/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define COMM_LEN 16
#define FLIGHT_CHUNK 16384   /* bytes per chunk record; a power of two */
#define FLIGHT_MAX_CHUNKS 64 /* 1 MiB per call at most */
#define FLIGHT_MAX_IOV 16    /* iovecs followed per readv/writev/recvmsg/sendmsg */
#define FLIGHT_PATH_MAX 4096

#define FILTER_PID 1
#define FILTER_COMM 2
#define FILTER_CGROUP 4

#define TS_COMPAT 0x0002

enum flight_kind {
	FK_CALL = 1,
	FK_PAYLOAD = 2, /* bytes the call moved */
	FK_PATH = 3,    /* the path it opened */
};

/* How a call's payload is found. */
enum flight_cap {
	CAP_NONE = 0,
	CAP_RET_BUF,   /* ret bytes at args[1] (read, write, pread64, recvfrom, sendto) */
	CAP_RET_IOV,   /* ret bytes over the iovecs at args[1], args[2] (readv, writev) */
	CAP_RET_MSG,   /* ret bytes over a msghdr's iovecs at args[1] */
	CAP_SOCKADDR,  /* args[2] bytes at args[1] (connect) */
	CAP_ADDROUT,   /* *args[2] bytes at args[1] (accept, getsockname) */
	CAP_POLLFD,    /* args[1] pollfds at args[0] */
	CAP_FDSETS,    /* the three fd_sets of select */
	CAP_EPOLL,     /* ret epoll_events at args[1] */
	CAP_RANDOM,    /* ret bytes at args[0] (getrandom) */
	CAP_TS0,       /* the timespec at args[0] (nanosleep) */
	CAP_TS2,       /* the timespec at args[2] (clock_nanosleep) */
	CAP_EPOLL_CTL, /* the epoll_event at args[3] */
};

struct flight_config {
	__u32 filters;       /* FILTER_* */
	__u32 self_tgid;     /* the recorder's own, never recorded */
	__u32 payload_bytes; /* bytes kept per call, <= FLIGHT_CHUNK * FLIGHT_MAX_CHUNKS */
	__u32 _pad;
};

struct flight_config fcfg = {};

/* One call (FK_CALL). */
struct flight_call {
	__u16 kind;
	__u16 nr;
	__u32 pid;
	__u32 tid;
	__u32 cpu;
	__u64 ktime; /* entry */
	__u64 dur;
	__u64 cgroup_id;
	__s64 ret;
	__u64 args[6];
	__u64 truncated; /* bytes the call moved beyond what was kept */
	__u32 kept;      /* payload bytes emitted in chunks before this record */
	__u32 path_len;
	char comm[COMM_LEN];
};

/* A piece of a call's payload or path (FK_PAYLOAD, FK_PATH). */
struct flight_chunk {
	__u16 kind;
	__u16 _pad;
	__u32 tid;
	__u64 ktime; /* the call's entry: with tid, which call it belongs to */
	__u32 off;
	__u32 len;
	__u8 data[FLIGHT_CHUNK];
};

struct flight_start {
	__u64 ktime;
	__u64 args[6];
	__s32 nr; /* -1: empty */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* overridden by FlightOptions.RingBytes */
} flight_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flight_chunk);
} flight_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct flight_start);
} flight_inflight SEC(".maps");

/* Counters: 0 calls lost (ring full), 1 chunks lost, 2 restarted calls skipped, 3 bytes truncated. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} flight_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} flight_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[COMM_LEN]);
	__type(value, __u8);
} flight_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} flight_cgroups SEC(".maps");

/* Force BTF for bpf2go -type. */
const struct flight_call *unused_flight_call __attribute__((unused));
const struct flight_chunk *unused_flight_chunk __attribute__((unused));

static __always_inline void count(__u32 i, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&flight_counters, &i);
	if (v)
		*v += n;
}

/* Which calls are recorded, and where their payload is (x86_64 numbers). */
static __always_inline int flight_cap(long nr)
{
	switch (nr) {
	case 0:   /* read */
	case 1:   /* write */
	case 17:  /* pread64 */
	case 18:  /* pwrite64 */
	case 44:  /* sendto */
	case 45:  /* recvfrom */
		return CAP_RET_BUF;
	case 19:  /* readv */
	case 20:  /* writev */
	case 295: /* preadv */
	case 296: /* pwritev */
		return CAP_RET_IOV;
	case 46:  /* sendmsg */
	case 47:  /* recvmsg */
		return CAP_RET_MSG;
	case 42:  /* connect */
		return CAP_SOCKADDR;
	case 43:  /* accept */
	case 288: /* accept4 */
	case 51:  /* getsockname */
	case 52:  /* getpeername */
		return CAP_ADDROUT;
	case 7:   /* poll */
	case 271: /* ppoll */
		return CAP_POLLFD;
	case 23:  /* select */
	case 270: /* pselect6 */
		return CAP_FDSETS;
	case 232: /* epoll_wait */
	case 281: /* epoll_pwait */
		return CAP_EPOLL;
	case 318: /* getrandom */
		return CAP_RANDOM;
	case 35:  /* nanosleep */
		return CAP_TS0;
	case 230: /* clock_nanosleep */
		return CAP_TS2;
	case 233: /* epoll_ctl */
		return CAP_EPOLL_CTL;
	case 2:   /* open */
	case 3:   /* close */
	case 32:  /* dup */
	case 33:  /* dup2 */
	case 41:  /* socket */
	case 48:  /* shutdown */
	case 72:  /* fcntl */
	case 85:  /* creat */
	case 257: /* openat */
	case 292: /* dup3 */
	case 436: /* close_range */
		return CAP_NONE;
	}
	return -1;
}

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
}

static __always_inline bool flight_want(struct task_struct *t)
{
	__u32 f = fcfg.filters;
	__u32 tgid = t->tgid;

	if (!f || tgid == fcfg.self_tgid)
		return false; /* the flight recorder records selected processes only */
	if ((f & FILTER_PID) && !bpf_map_lookup_elem(&flight_pids, &tgid))
		return false;
	if (f & FILTER_COMM) {
		char comm[COMM_LEN];

		*(__u64 *)&comm[0] = *(__u64 *)&t->comm[0];
		*(__u64 *)&comm[8] = *(__u64 *)&t->comm[8];
		if (!bpf_map_lookup_elem(&flight_comms, comm))
			return false;
	}
	if (f & FILTER_CGROUP) {
		__u64 cg = task_cgroup_id(t);

		if (!bpf_map_lookup_elem(&flight_cgroups, &cg))
			return false;
	}
	return true;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(flight_enter, struct pt_regs *regs, long nr)
{
	if (flight_cap(nr) < 0)
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	if (t->thread_info.status & TS_COMPAT)
		return 0;
	if (!flight_want(t))
		return 0;
	struct flight_start *s = bpf_task_storage_get(&flight_inflight, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	s->ktime = bpf_ktime_get_ns();
	s->nr = nr;
	s->args[0] = regs->di;
	s->args[1] = regs->si;
	s->args[2] = regs->dx;
	s->args[3] = regs->r10;
	s->args[4] = regs->r8;
	s->args[5] = regs->r9;
	return 0;
}

/* The bytes of one call, emitted as chunks by a bpf_loop callback (verified once, where
 * an unrolled or bounded loop inlined at every call site exceeds the verifier's budget).
 * A source is one buffer (src, seg_left) or, with iov set, iov_left iovecs. */
struct emit_state {
	__u64 src;
	__u64 seg_left;
	__u64 iov;
	__u64 ktime;
	__u32 iov_left;
	__u32 done;
	__u32 n;
	__u32 tid;
};

struct iov {
	__u64 base;
	__u64 len;
};

static long emit_step(__u64 i, struct emit_state *st)
{
	if (st->done >= st->n)
		return 1;
	if (st->seg_left == 0) {
		struct iov v;

		if (!st->iov_left || bpf_probe_read_user(&v, sizeof(v), (void *)st->iov))
			return 1;
		st->iov += sizeof(v);
		st->iov_left--;
		st->src = v.base;
		st->seg_left = v.len;
		return 0;
	}
	__u64 len = st->n - st->done;
	if (len > st->seg_left)
		len = st->seg_left;
	if (len > FLIGHT_CHUNK)
		len = FLIGHT_CHUNK;
	/* keep len in [1, FLIGHT_CHUNK] provably for the verifier */
	len = ((len - 1) & (FLIGHT_CHUNK - 1)) + 1;
	__u32 zero = 0;
	struct flight_chunk *c = bpf_map_lookup_elem(&flight_scratch, &zero);
	if (!c || bpf_probe_read_user(c->data, len, (void *)st->src))
		return 1;
	c->kind = FK_PAYLOAD;
	c->tid = st->tid;
	c->ktime = st->ktime;
	c->off = st->done;
	c->len = len;
	if (bpf_ringbuf_output(&flight_events, c, offsetof(struct flight_chunk, data) + len, 0)) {
		count(1, 1);
		return 1;
	}
	st->src += len;
	st->seg_left -= len;
	st->done += len;
	return 0;
}

/* emit copies the first n bytes of a buffer (iov 0) or of iovcnt iovecs at iov. */
static __always_inline __u32 emit(__u32 tid, __u64 ktime, __u64 src, __u64 iov, __u64 iovcnt, __u32 n)
{
	struct emit_state st = {
		.src = iov ? 0 : src,
		.seg_left = iov ? 0 : n,
		.iov = iov,
		.iov_left = iovcnt > FLIGHT_MAX_IOV ? FLIGHT_MAX_IOV : iovcnt,
		.ktime = ktime,
		.n = n,
		.tid = tid,
	};

	if (!n)
		return 0;
	bpf_loop(FLIGHT_MAX_CHUNKS + FLIGHT_MAX_IOV, emit_step, &st, 0);
	return st.done;
}

static __always_inline __u32 min_u32(__u64 a, __u32 b)
{
	return a < b ? a : b;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(flight_exit, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	int cap = flight_cap(nr);
	if (cap < 0)
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	struct flight_start *s = bpf_task_storage_get(&flight_inflight, t, 0, 0);
	if (!s || s->nr != nr)
		return 0;
	struct flight_start a = *s;
	s->nr = -1;
	/* ERESTARTSYS..ERESTART_RESTARTBLOCK: no program sees these; the kernel restarts the
	 * call and the restarted attempt is the one recorded. */
	if (ret <= -512 && ret >= -516) {
		count(2, 1);
		return 0;
	}

	__u32 zero = 0;
	struct flight_chunk *c = bpf_map_lookup_elem(&flight_scratch, &zero);
	if (!c)
		return 0;
	__u32 tid = t->pid;
	__u32 limit = fcfg.payload_bytes;
	__u64 moved = 0; /* bytes the call moved that are worth keeping */
	__u32 kept = 0, path_len = 0, want = 0;
	__u64 src = 0, iov = 0, iovcnt = 0;

	switch (cap) {
	case CAP_RET_BUF:
		if (ret > 0) {
			moved = ret;
			src = a.args[1], want = min_u32(moved, limit);
		}
		break;
	case CAP_RET_IOV:
		if (ret > 0) {
			moved = ret;
			iov = a.args[1], iovcnt = a.args[2], want = min_u32(moved, limit);
		}
		break;
	case CAP_RET_MSG:
		if (ret > 0) {
			struct { __u64 name; __u32 namelen; __u32 _p; __u64 iov; __u64 iovlen; } m;
			moved = ret;
			if (!bpf_probe_read_user(&m, sizeof(m), (void *)a.args[1]))
				iov = m.iov, iovcnt = m.iovlen, want = min_u32(moved, limit);
		}
		break;
	case CAP_SOCKADDR:
		moved = a.args[2] > 128 ? 128 : a.args[2];
		src = a.args[1], want = moved;
		break;
	case CAP_ADDROUT:
		if (ret >= 0 && a.args[1] && a.args[2]) {
			__u32 alen = 0;
			bpf_probe_read_user(&alen, sizeof(alen), (void *)a.args[2]);
			moved = alen > 128 ? 128 : alen;
			src = a.args[1], want = moved;
		}
		break;
	case CAP_POLLFD:
		moved = a.args[1] * 8;
		src = a.args[0], want = min_u32(moved, FLIGHT_CHUNK);
		break;
	case CAP_FDSETS: {
		/* The three sets after the call, each in a 128-byte slot (an fd_set of
		 * FD_SETSIZE 1024), absent ones as zeros. */
		__builtin_memset(c->data, 0, 3 * 128);
		if (a.args[1])
			bpf_probe_read_user(c->data, 128, (void *)a.args[1]);
		if (a.args[2])
			bpf_probe_read_user(c->data + 128, 128, (void *)a.args[2]);
		if (a.args[3])
			bpf_probe_read_user(c->data + 256, 128, (void *)a.args[3]);
		moved = 3 * 128;
		c->kind = FK_PAYLOAD;
		c->tid = tid;
		c->ktime = a.ktime;
		c->off = 0;
		c->len = 3 * 128;
		if (bpf_ringbuf_output(&flight_events, c, offsetof(struct flight_chunk, data) + 3 * 128, 0) == 0)
			kept = 3 * 128;
		break;
	}
	case CAP_EPOLL:
		if (ret > 0) {
			moved = ret * 12;
			src = a.args[1], want = min_u32(moved, FLIGHT_CHUNK);
		}
		break;
	case CAP_RANDOM:
		if (ret > 0) {
			moved = ret;
			src = a.args[0], want = min_u32(moved, limit);
		}
		break;
	case CAP_TS0:
	case CAP_TS2:
		moved = 16;
		src = cap == CAP_TS0 ? a.args[0] : a.args[2], want = 16;
		break;
	case CAP_EPOLL_CTL:
		if (a.args[3]) {
			moved = 12;
			src = a.args[3], want = 12;
		}
		break;
	}
	if (want)
		kept = emit(tid, a.ktime, src, iov, iovcnt, want);
	if (nr == 2 || nr == 85 || nr == 257) { /* open, creat, openat: the path */
		__u64 p = nr == 257 ? a.args[1] : a.args[0];
		long n = bpf_probe_read_user_str(c->data, FLIGHT_PATH_MAX, (void *)p);
		if (n > 1) {
			path_len = n - 1;
			c->kind = FK_PATH;
			c->tid = tid;
			c->ktime = a.ktime;
			c->off = 0;
			c->len = path_len;
			if (path_len > FLIGHT_PATH_MAX - 1)
				path_len = FLIGHT_PATH_MAX - 1;
			if (bpf_ringbuf_output(&flight_events, c, offsetof(struct flight_chunk, data) + path_len, 0)) {
				count(1, 1);
				path_len = 0;
			}
		}
	}

	struct flight_call *e = bpf_ringbuf_reserve(&flight_events, sizeof(*e), 0);
	if (!e) {
		count(0, 1);
		return 0;
	}
	e->kind = FK_CALL;
	e->nr = nr;
	e->pid = t->tgid;
	e->tid = tid;
	e->cpu = bpf_get_smp_processor_id();
	e->ktime = a.ktime;
	e->dur = bpf_ktime_get_ns() - a.ktime;
	e->cgroup_id = task_cgroup_id(t);
	e->ret = ret;
#pragma unroll
	for (int i = 0; i < 6; i++)
		e->args[i] = a.args[i];
	e->kept = kept;
	e->truncated = moved > kept ? moved - kept : 0;
	if (e->truncated)
		count(3, e->truncated);
	e->path_len = path_len;
	*(__u64 *)&e->comm[0] = *(__u64 *)&t->comm[0];
	*(__u64 *)&e->comm[8] = *(__u64 *)&t->comm[8];
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* New processes of a selected process are selected too (a command's workers). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(flight_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;

	if (!(fcfg.filters & FILTER_PID) || ptgid == ctgid)
		return 0;
	if (bpf_map_lookup_elem(&flight_pids, &ptgid)) {
		__u8 one = 1;
		bpf_map_update_elem(&flight_pids, &ctgid, &one, BPF_ANY);
	}
	return 0;
}

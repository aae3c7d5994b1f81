//go:build ignore

// CO-RE probes for the kprobe recorder. One event layout (struct event) for
// every hook; Go decodes it by fixed offsets (see decode.go, layout_test.go).

#include "headers/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define COMM_LEN 16
#define MAX_PAYLOAD 512 /* compile-time bound; the runtime limit is cfg.payload_bytes */
#define AF_INET 2
#define AF_INET6 10
#define PROTO_TCP 6

/* x86_64 syscall numbers (the probes are built for amd64 only). */
#define __NR_read 0
#define __NR_write 1
#define __NR_pread64 17
#define __NR_pwrite64 18
#define __NR_readv 19
#define __NR_writev 20

enum event_type {
	EV_READ = 1,
	EV_WRITE = 2,
	EV_TCP_SEND = 3,
	EV_TCP_RECV = 4,
	EV_SCHED_SWITCH = 5,
	EV_PAGE_FAULT = 6,
	EV_MAX = 7,
};

enum rw_syscall {
	SC_READ = 1,
	SC_PREAD64 = 2,
	SC_READV = 3,
	SC_WRITE = 4,
	SC_PWRITE64 = 5,
	SC_WRITEV = 6,
};

#define FLAG_PREEMPTED 1
#define FLAG_KERNEL_FAULT 2

#define FILTER_PID 1
#define FILTER_COMM 2
#define FILTER_CGROUP 4
#define FILTER_PAYLOAD 8 /* payload_pids is non-empty */

/* Keep in sync with decode.go (offsets are asserted by layout_test.go). */
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

/* Force BTF for bpf2go -type event. */
const struct event *unused_event __attribute__((unused));

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

struct rw_args {
	__u64 ts;
	__u64 buf;
	__s32 fd;
	__u8 sc;
	__u8 _pad[3];
};

/* Per-task state lives in task storage: no hashing on the hot path, and
 * it is freed with the task, so nothing leaks when a syscall's exit is
 * never seen. An entry is "empty" when its discriminator (sc, ts, out_ts)
 * is 0. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rw_args);
} rw_start SEC(".maps");

/* Raw tracepoint path: the filter verdict and the in-flight syscall of the
 * task running on this CPU, with no helper call to reach them (a per-CPU
 * array lookup is inlined). The task is identified by its pt_regs pointer,
 * which sys_enter/sys_exit receive for free. on_sched_switch empties the
 * slot whenever a task leaves the CPU, parking an in-flight syscall in
 * rw_start (task storage), so a slot never outlives its task's time on the
 * CPU and a reused stack cannot inherit it. */
struct rw_cpu {
	__u64 regs;  /* owner's pt_regs; 0 = empty */
	__u32 gen;   /* cfg.gen the verdict was computed under */
	__u8 want;   /* the verdict: record this task */
	__u8 pending; /* args holds an entered, not yet exited syscall */
	__u8 _pad[2];
	__u64 usp;   /* the syscall's user stack pointer: the parking key */
	struct rw_args args;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rw_cpu);
} rw_cpu SEC(".maps");

/* Syscalls parked in rw_start by on_sched_switch, counted by a hash of the
 * syscall's user stack pointer (the same at entry and exit, distinct per
 * thread, and a scalar, unlike the pt_regs pointer): sys_exit looks in task storage (two helper calls) only
 * when its bucket is non-zero. A task that dies while parked leaves its
 * bucket raised, which costs that bucket the lookup, never an event. */
#define PARK_BUCKETS 4096

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PARK_BUCKETS);
	__type(key, __u32);
	__type(value, __u32);
} rw_parked SEC(".maps");

static __always_inline __u32 park_bucket(__u64 usp)
{
	return (usp ^ (usp >> 12) ^ (usp >> 24)) >> 4 & (PARK_BUCKETS - 1);
}

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} tcp_start SEC(".maps");

struct offcpu {
	__u64 out_ts;
	__u64 wake_ts;
	__u32 next_pid;
	__u32 next_tid;
	__u32 waker_pid;
	__u32 waker_tid;
	char next_comm[COMM_LEN];
	__u8 preempted;
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct offcpu);
} offcpu SEC(".maps");

static __always_inline void count_lost(__u32 type)
{
	__u64 *v = bpf_map_lookup_elem(&lost, &type);
	if (v)
		*v += 1;
}

/* Bytes submitted on this CPU since its last forced wakeup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unwoken SEC(".maps");

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

static __always_inline bool want(__u32 tgid, const char *comm_src, bool current, __u64 cgid)
{
	__u32 f = cfg.filters;
	__u32 self = cfg.self_tgid;

	if (self && tgid == self)
		return false;
	if (!f)
		return true;
	if ((f & FILTER_PID) && !bpf_map_lookup_elem(&filter_pids, &tgid))
		return false;
	if (f & FILTER_COMM) {
		char comm[COMM_LEN] = {};
		if (current)
			bpf_get_current_comm(comm, sizeof(comm));
		else
			bpf_probe_read_kernel(comm, sizeof(comm), comm_src);
		if (!bpf_map_lookup_elem(&filter_comms, comm))
			return false;
	}
	if (f & FILTER_CGROUP) {
		if (current)
			cgid = bpf_get_current_cgroup_id();
		if (!bpf_map_lookup_elem(&filter_cgroups, &cgid))
			return false;
	}
	return true;
}

static __always_inline bool want_current(__u64 pid_tgid)
{
	return want(pid_tgid >> 32, 0, true, 0);
}

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

static __always_inline bool want_task(struct task_struct *t)
{
	__u32 f = cfg.filters;
	__u64 cgid = 0;

	if (f & FILTER_CGROUP)
		cgid = task_cgroup_id(t);
	return want(BPF_CORE_READ(t, tgid), t->comm, false, cgid);
}

static __always_inline void fill_current(struct event *e, __u64 pid_tgid, __u32 type, __u64 ts)
{
	e->ts_ns = ts;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->cpu = bpf_get_smp_processor_id();
	e->type = type;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

/* ---- read/write family ------------------------------------------------ */

/* Helper calls are the dominant cost here (each is a call and a return
 * through the kernel's return thunk): the task is fetched once and its
 * fields read with BTF loads instead of bpf_get_current_pid_tgid,
 * bpf_get_current_comm, bpf_get_current_cgroup_id and probe reads. */

static __always_inline __u64 cur_cgroup_id(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
}

/* The filter, for the current task; t is bpf_get_current_task_btf(). */
static __always_inline bool want_cur(struct task_struct *t, __u32 tgid)
{
	__u32 f = cfg.filters;
	__u32 self = cfg.self_tgid;

	if (self && tgid == self)
		return false;
	if (!f)
		return true;
	if ((f & FILTER_PID) && !bpf_map_lookup_elem(&filter_pids, &tgid))
		return false;
	if (f & FILTER_COMM) {
		char comm[COMM_LEN] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		if (!bpf_map_lookup_elem(&filter_comms, comm))
			return false;
	}
	if (f & FILTER_CGROUP) {
		__u64 cgid = cur_cgroup_id(t);
		if (!bpf_map_lookup_elem(&filter_cgroups, &cgid))
			return false;
	}
	return true;
}

static __always_inline int rw_enter(struct task_struct *t, __u8 sc, __s32 fd, __u64 buf)
{
	if (!want_cur(t, t->tgid))
		return 0;

	struct rw_args *a = bpf_task_storage_get(&rw_start, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a)
		return 0;
	a->ts = bpf_ktime_get_ns();
	a->fd = fd;
	a->buf = buf;
	a->sc = sc;
	return 0;
}

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* dev/ino of the file behind fd, with BTF loads only (bpf_rdonly_cast is
 * inlined by the verifier): the fd slot is read through struct kiocb,
 * whose first member is a struct file pointer. */
static __always_inline void fd_inode(struct task_struct *t, __s32 fd, __u64 *dev, __u64 *ino)
{
	struct fdtable *fdt = t->files->fdt;

	if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
		return;
	struct kiocb *slot = bpf_rdonly_cast((void *)fdt->fd + (__u64)fd * sizeof(void *),
					     bpf_core_type_id_kernel(struct kiocb));
	struct file *f = slot->ki_filp;
	if (!f)
		return;
	struct inode *in = f->f_inode;
	*ino = in->i_ino;
	*dev = in->i_sb->s_dev;
}

static __always_inline __u32 payload_len(__u32 tgid, long ret)
{
	__u32 n;

	if (ret <= 0 || !(cfg.filters & FILTER_PAYLOAD))
		return 0;
	if (!bpf_map_lookup_elem(&payload_pids, &tgid))
		return 0;
	n = cfg.payload_bytes;
	if ((__u64)ret < n)
		n = ret;
	if (n > MAX_PAYLOAD)
		n = MAX_PAYLOAD;
	return n;
}

static __always_inline int rw_emit(struct task_struct *t, struct rw_args *ap, long ret, __u32 type,
				   __u8 sc)
{
	struct rw_args a = *ap;

	/* An entry left by a syscall whose exit we missed (attach race). */
	if (a.sc != sc)
		return 0;

	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = t->tgid;
	__u32 n = 0, size = sizeof(struct event);
	struct event *e;

	if (sc == SC_READ || sc == SC_PREAD64)
		n = payload_len(tgid, ret);

	if (n) {
		struct event_payload *p = bpf_ringbuf_reserve(&events, sizeof(*p), 0);
		if (!p) {
			count_lost(type);
			return 0;
		}
		__builtin_memset(&p->ev, 0, sizeof(p->ev));
		/* n is in [1, MAX_PAYLOAD]; the mask keeps that provable for the
		 * verifier (MAX_PAYLOAD is a power of two). */
		n = ((n - 1) & (MAX_PAYLOAD - 1)) + 1;
		if (bpf_probe_read_user(p->data, n, (void *)a.buf) == 0)
			p->ev.payload_len = n;
		e = &p->ev;
		size = sizeof(*p);
	} else {
		e = reserve(type);
		if (!e)
			return 0;
	}

	e->ts_ns = a.ts;
	e->dur_ns = now - a.ts;
	e->pid = tgid;
	e->tid = t->pid;
	e->cpu = bpf_get_smp_processor_id();
	e->type = type;
	e->cgroup_id = cur_cgroup_id(t);
	/* comm is 16 bytes: two BTF loads instead of bpf_get_current_comm */
	*(__u64 *)&e->comm[0] = *(__u64 *)&t->comm[0];
	*(__u64 *)&e->comm[8] = *(__u64 *)&t->comm[8];
	e->syscall = sc;
	e->fd = a.fd;
	e->ret = ret;
	if (ret < 0)
		e->err = -ret;
	fd_inode(t, a.fd, &e->dev, &e->ino);
	submit_sized(e, size);
	return 0;
}

static __always_inline int rw_exit(long ret, __u32 type, __u8 sc)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct rw_args *ap = bpf_task_storage_get(&rw_start, t, 0, 0);
	if (!ap || !ap->sc)
		return 0;
	struct rw_args a = *ap;
	ap->sc = 0;
	return rw_emit(t, &a, ret, type, sc);
}

/* Fallback: the syscalls:* tracepoints, one program pair per syscall. */
#define RW_PAIR(name, type, sc)                                           \
	SEC("tracepoint/syscalls/sys_enter_" #name)                       \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)           \
	{                                                                 \
		return rw_enter(bpf_get_current_task_btf(), sc,           \
				(__s32)ctx->args[0], ctx->args[1]);       \
	}                                                                 \
	SEC("tracepoint/syscalls/sys_exit_" #name)                        \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)             \
	{                                                                 \
		return rw_exit(ctx->ret, type, sc);                       \
	}

RW_PAIR(read, EV_READ, SC_READ)
RW_PAIR(pread64, EV_READ, SC_PREAD64)
RW_PAIR(readv, EV_READ, SC_READV)
RW_PAIR(write, EV_WRITE, SC_WRITE)
RW_PAIR(pwrite64, EV_WRITE, SC_PWRITE64)
RW_PAIR(writev, EV_WRITE, SC_WRITEV)

/* Preferred: one BTF raw tracepoint pair for the whole family: no perf
 * trace buffer, and the syscall number selects. */
#define TS_COMPAT 0x0002 /* thread_info.status: an ia32 syscall (other numbering) */

static __always_inline __u8 rw_syscall_nr(long nr)
{
	switch (nr) {
	case __NR_read:
		return SC_READ;
	case __NR_write:
		return SC_WRITE;
	case __NR_pread64:
		return SC_PREAD64;
	case __NR_pwrite64:
		return SC_PWRITE64;
	case __NR_readv:
		return SC_READV;
	case __NR_writev:
		return SC_WRITEV;
	}
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_rw, struct pt_regs *regs, long nr)
{
	__u8 sc = rw_syscall_nr(nr);
	if (!sc)
		return 0;

	__u32 zero = 0;
	struct rw_cpu *c = bpf_map_lookup_elem(&rw_cpu, &zero);
	if (!c)
		return 0;
	__u64 r = (__u64)regs;
	__u32 gen = cfg.gen; /* read before the filter maps */
	struct task_struct *t;

	if (c->regs == r && c->gen == gen) {
		/* the verdict of this task's previous syscall still holds */
		if (!c->want)
			return 0;
		t = bpf_get_current_task_btf();
	} else {
		t = bpf_get_current_task_btf();
		c->want = want_cur(t, t->tgid);
		c->gen = gen;
		c->regs = r;
		c->pending = 0;
		if (!c->want)
			return 0;
	}
	/* The syscalls:* tracepoints ignore ia32 syscalls; so do we. */
	if (t->thread_info.status & TS_COMPAT)
		return 0;
	c->args.ts = bpf_ktime_get_ns();
	c->args.fd = (__s32)regs->di;
	c->args.buf = regs->si;
	c->args.sc = sc;
	c->usp = regs->sp;
	c->pending = 1;
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_rw, struct pt_regs *regs, long ret)
{
	__u8 sc = rw_syscall_nr(regs->orig_ax);
	if (!sc)
		return 0;

	__u32 zero = 0;
	struct rw_cpu *c = bpf_map_lookup_elem(&rw_cpu, &zero);
	if (!c)
		return 0;
	__u64 r = (__u64)regs;
	__u32 type = sc >= SC_WRITE ? EV_WRITE : EV_READ;
	struct rw_args a;

	if (c->regs == r && c->pending) {
		/* entered on this CPU and never switched out: the common case */
		a = c->args;
		c->pending = 0;
		return rw_emit(bpf_get_current_task_btf(), &a, ret, type, sc);
	}

	/* Parked by on_sched_switch (blocked or preempted in the syscall)? */
	__u32 b = park_bucket(regs->sp);
	__u32 *parked = bpf_map_lookup_elem(&rw_parked, &b);
	if (!parked || !*parked)
		return 0;
	struct task_struct *t = bpf_get_current_task_btf();
	struct rw_args *ap = bpf_task_storage_get(&rw_start, t, 0, 0);
	if (!ap || !ap->sc)
		return 0;
	a = *ap;
	ap->sc = 0;
	__sync_fetch_and_add(parked, -1);
	return rw_emit(t, &a, ret, type, sc);
}

/* Called by on_sched_switch for the task leaving the CPU. */
static __always_inline void rw_switch_out(struct task_struct *prev)
{
	__u32 zero = 0;
	struct rw_cpu *c = bpf_map_lookup_elem(&rw_cpu, &zero);
	if (!c || !c->regs)
		return;
	if (c->pending) {
		struct rw_args *a = bpf_task_storage_get(&rw_start, prev, 0,
							 BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (a) {
			__u32 b = park_bucket(c->usp);
			__u32 *parked = bpf_map_lookup_elem(&rw_parked, &b);
			*a = c->args;
			if (parked)
				__sync_fetch_and_add(parked, 1);
		}
	}
	c->regs = 0;
	c->pending = 0;
}

/* ---- TCP ------------------------------------------------------------- */

static __always_inline int tcp_event(struct sock *sk, int ret, __u32 type, __u64 start)
{
	if (BPF_CORE_READ(sk, sk_protocol) != PROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	__u64 id = bpf_get_current_pid_tgid();
	if (!start && !want_current(id))
		return 0;

	__u64 now = bpf_ktime_get_ns();
	struct event *e = reserve(type);
	if (!e)
		return 0;
	fill_current(e, id, type, start ? start : now);
	if (start)
		e->dur_ns = now - start;
	e->ret = ret;
	if (ret < 0)
		e->err = -ret;
	e->fd = -1;
	e->family = family;
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	submit(e);
	return 0;
}

/* Fallback: sock tracepoints, fire after every sendmsg/recvmsg on a socket. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_sock_send, struct sock *sk, int ret, int flags)
{
	return tcp_event(sk, ret, EV_TCP_SEND, 0);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv, struct sock *sk, int ret, int flags)
{
	return tcp_event(sk, ret, EV_TCP_RECV, 0);
}

/* Preferred: fentry/fexit on tcp_sendmsg/tcp_recvmsg (gives a duration). */
static __always_inline int tcp_entry(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!want_current(id))
		return 0;
	__u64 *ts = bpf_task_storage_get(&tcp_start, bpf_get_current_task_btf(), 0,
					 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts)
		*ts = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int tcp_exit(struct sock *sk, int ret, __u32 type)
{
	__u64 *tsp = bpf_task_storage_get(&tcp_start, bpf_get_current_task_btf(), 0, 0);
	if (!tsp || !*tsp)
		return 0;
	__u64 ts = *tsp;
	*tsp = 0;
	return tcp_event(sk, ret, type, ts);
}

SEC("fentry/tcp_sendmsg")
int BPF_PROG(fentry_tcp_sendmsg, struct sock *sk)
{
	return tcp_entry();
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(fexit_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return tcp_exit(sk, ret, EV_TCP_SEND);
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(fentry_tcp_recvmsg, struct sock *sk)
{
	return tcp_entry();
}

/* 6.x signature: tcp_recvmsg(sk, msg, len, flags). */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags, int ret)
{
	return tcp_exit(sk, ret, EV_TCP_RECV);
}

/* ---- scheduler --------------------------------------------------------- */

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 ntid = BPF_CORE_READ(next, pid);
	__u32 ptid = BPF_CORE_READ(prev, pid);

	rw_switch_out(prev);

	/* Switch-in: the thread we saw leave runs again; one event for the gap. */
	struct offcpu *o = ntid ? bpf_task_storage_get(&offcpu, next, 0, 0) : 0;
	if (o && o->out_ts) {
		struct offcpu v = *o;
		o->out_ts = 0;
		struct event *e = reserve(EV_SCHED_SWITCH);
		if (e) {
			e->ts_ns = v.out_ts;
			e->dur_ns = now - v.out_ts;
			e->pid = BPF_CORE_READ(next, tgid);
			e->tid = ntid;
			e->cpu = bpf_get_smp_processor_id();
			e->type = EV_SCHED_SWITCH;
			e->cgroup_id = task_cgroup_id(next);
			bpf_probe_read_kernel(e->comm, sizeof(e->comm), next->comm);
			e->next_pid = v.next_pid;
			e->next_tid = v.next_tid;
			__builtin_memcpy(e->next_comm, v.next_comm, sizeof(e->next_comm));
			e->fd = -1;
			if (v.preempted) {
				e->flags = FLAG_PREEMPTED;
				e->runq_ns = now - v.out_ts;
			} else {
				e->waker_pid = v.waker_pid;
				e->waker_tid = v.waker_tid;
				e->runq_ns = v.wake_ts ? now - v.wake_ts : 0;
			}
			submit(e);
		}
	}

	/* Switch-out: remember why and who took the CPU. */
	if (ptid && want_task(prev)) {
		struct offcpu *v = bpf_task_storage_get(&offcpu, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!v)
			return 0;
		v->out_ts = now;
		v->wake_ts = 0;
		v->waker_pid = 0;
		v->waker_tid = 0;
		/* Still runnable (preempted, or yielded) vs blocked. */
		v->preempted = preempt || prev_state == 0;
		v->next_pid = BPF_CORE_READ(next, tgid);
		v->next_tid = ntid;
		bpf_probe_read_kernel(v->next_comm, sizeof(v->next_comm), next->comm);
	}
	return 0;
}

static __always_inline void note_wakeup(struct task_struct *p)
{
	struct offcpu *o = bpf_task_storage_get(&offcpu, p, 0, 0);
	if (!o || !o->out_ts || o->preempted || o->wake_ts)
		return;
	__u64 id = bpf_get_current_pid_tgid();
	o->wake_ts = bpf_ktime_get_ns();
	o->waker_pid = id >> 32;
	o->waker_tid = (__u32)id;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(on_sched_wakeup, struct task_struct *p)
{
	note_wakeup(p);
	return 0;
}

/* A new task has never been switched out: its first run reports the
 * run-queue delay since creation. */
SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(on_sched_wakeup_new, struct task_struct *p)
{
	if (!want_task(p))
		return 0;
	struct offcpu *v = bpf_task_storage_get(&offcpu, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!v)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	v->out_ts = bpf_ktime_get_ns();
	v->wake_ts = v->out_ts;
	v->waker_pid = id >> 32;
	v->waker_tid = (__u32)id;
	v->preempted = 0;
	v->next_pid = 0;
	v->next_tid = 0;
	__builtin_memset(v->next_comm, 0, sizeof(v->next_comm));
	return 0;
}

/* ---- page faults ----------------------------------------------------- */

/* exceptions:page_fault_{user,kernel} (x86 only); the format is stable ABI. */
struct pf_ctx {
	__u64 common;
	__u64 address;
	__u64 ip;
	__u64 error_code;
};

static __always_inline int page_fault(struct pf_ctx *ctx, bool kernel)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!want_current(id))
		return 0;
	struct event *e = reserve(EV_PAGE_FAULT);
	if (!e)
		return 0;
	fill_current(e, id, EV_PAGE_FAULT, bpf_ktime_get_ns());
	e->fd = -1;
	e->addr = ctx->address;
	e->ip = ctx->ip;
	e->error_code = ctx->error_code;
	if (kernel)
		e->flags = FLAG_KERNEL_FAULT;
	submit(e);
	return 0;
}

SEC("tracepoint/exceptions/page_fault_user")
int on_page_fault_user(struct pf_ctx *ctx)
{
	return page_fault(ctx, false);
}

SEC("tracepoint/exceptions/page_fault_kernel")
int on_page_fault_kernel(struct pf_ctx *ctx)
{
	return page_fault(ctx, true);
}

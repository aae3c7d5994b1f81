/* The read/write family: read, pread64, readv, write, pwrite64, writev.
 *
 * Preferred: one BTF raw tracepoint pair on sys_enter/sys_exit for the
 * whole family (no perf trace buffer; the syscall number selects).
 * Fallback: the syscalls:* tracepoints, one program pair per syscall.
 *
 * Helper calls are the dominant cost here (each is a call and a return
 * through the kernel's return thunk): the task is fetched once and its
 * fields read with BTF loads. */
#ifndef KPROBE_RW_H
#define KPROBE_RW_H

/* x86_64 syscall numbers (the probes are built for amd64 only). */
#define __NR_read 0
#define __NR_write 1
#define __NR_pread64 17
#define __NR_pwrite64 18
#define __NR_readv 19
#define __NR_writev 20

#define TS_COMPAT 0x0002 /* thread_info.status: an ia32 syscall (other numbering) */

struct rw_args {
	__u64 ts;
	__u64 buf;
	__s32 fd;
	__u8 sc;
	__u8 _pad[3];
};

/* Per-task state lives in task storage: no hashing on the hot path, and
 * it is freed with the task, so nothing leaks when a syscall's exit is
 * never seen. An entry is "empty" when sc is 0. */
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
 * thread, and a scalar, unlike the pt_regs pointer): sys_exit looks in task
 * storage (two helper calls) only when its bucket is non-zero. A task that
 * dies while parked leaves its bucket raised, which costs that bucket the
 * lookup, never an event. */
#define PARK_BUCKETS 4096

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PARK_BUCKETS);
	__type(key, __u32);
	__type(value, __u32);
} rw_parked SEC(".maps");

/* This CPU's slot (an inlined array access). */
static __always_inline struct rw_cpu *rw_this_cpu(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&rw_cpu, &zero);
}

static __always_inline __u32 park_bucket(__u64 usp)
{
	return (usp ^ (usp >> 12) ^ (usp >> 24)) >> 4 & (PARK_BUCKETS - 1);
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
	__u32 n = 0, size = sizeof(struct event);
	struct event *e;

	if (sc == SC_READ || sc == SC_PREAD64)
		n = payload_len(t->tgid, ret);

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

	fill_task(e, t, type, a.ts);
	e->dur_ns = now - a.ts;
	e->syscall = sc;
	e->fd = a.fd;
	e->ret = ret;
	if (ret < 0)
		e->err = -ret;
	fd_inode(t, a.fd, &e->dev, &e->ino);
	submit_sized(e, size);
	return 0;
}

/* ---- fallback: syscalls:* tracepoints ----------------------------------- */

static __always_inline int rw_enter(struct task_struct *t, __u8 sc, __s32 fd, __u64 buf)
{
	if (!want_task(t))
		return 0;

	struct rw_args *a = bpf_task_storage_get(&rw_start, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a) {
		count_lost(sc >= SC_WRITE ? EV_WRITE : EV_READ);
		return 0;
	}
	a->ts = bpf_ktime_get_ns();
	a->fd = fd;
	a->buf = buf;
	a->sc = sc;
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

/* ---- preferred: tp_btf sys_enter/sys_exit -------------------------------- */

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

	struct rw_cpu *c = rw_this_cpu();
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
		c->want = want_task(t);
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

	struct rw_cpu *c = rw_this_cpu();
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

/* exec changes what the filter sees (the process's name) but not the
 * pt_regs pointer that keys the verdict cached in rw_cpu: forget it. The
 * task is in execve, so no read or write of its is in flight. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(rw_on_exec, struct task_struct *p)
{
	struct rw_cpu *c = rw_this_cpu();
	if (c) {
		c->regs = 0;
		c->pending = 0;
	}
	return 0;
}

/* Called by on_sched_switch for the task leaving the CPU. */
static __always_inline void rw_switch_out(struct task_struct *prev)
{
	struct rw_cpu *c = rw_this_cpu();
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
		} else {
			count_lost(c->args.sc >= SC_WRITE ? EV_WRITE : EV_READ);
		}
	}
	c->regs = 0;
	c->pending = 0;
}

#endif

/* The scheduler: one event per off-CPU interval of a recorded thread, sent
 * when it runs again, saying who took the CPU, whether it was preempted or
 * blocked, who woke it (a task, or the kernel from interrupt context) and
 * how long it then waited for a CPU. */
#ifndef KPROBE_SCHED_H
#define KPROBE_SCHED_H

struct offcpu {
	__u64 out_ts;
	__u64 wake_ts;
	__u32 next_pid;
	__u32 next_tid;
	__u32 waker_pid;
	__u32 waker_tid;
	char next_comm[COMM_LEN];
	__u8 preempted;
	__u8 kernel_wakeup; /* woken from interrupt context */
	__u8 _pad[6];
};

/* An entry is "empty" when out_ts is 0. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct offcpu);
} offcpu SEC(".maps");

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 ntid = next->pid;
	__u32 ptid = prev->pid;

	rw_switch_out(prev);

	/* Switch-in: the thread we saw leave runs again; one event for the gap. */
	struct offcpu *o = ntid ? bpf_task_storage_get(&offcpu, next, 0, 0) : 0;
	if (o && o->out_ts) {
		struct offcpu v = *o;
		o->out_ts = 0;
		struct event *e = reserve(EV_SCHED_SWITCH);
		if (e) {
			fill_task(e, next, EV_SCHED_SWITCH, v.out_ts);
			e->dur_ns = now - v.out_ts;
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
				if (v.kernel_wakeup)
					e->flags = FLAG_KERNEL_WAKEUP;
				e->runq_ns = v.wake_ts ? now - v.wake_ts : 0;
			}
			submit(e);
		}
	}

	/* Switch-out: remember why and who took the CPU. */
	if (ptid && want_task(prev)) {
		struct offcpu *v = bpf_task_storage_get(&offcpu, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!v) {
			/* no storage for this thread (memory, or the kernel's
			 * storage lock busy): its off-CPU event is lost */
			count_lost(EV_SCHED_SWITCH);
			return 0;
		}
		v->out_ts = now;
		v->wake_ts = 0;
		v->waker_pid = 0;
		v->waker_tid = 0;
		v->kernel_wakeup = 0;
		/* Still runnable (preempted, or yielded) vs blocked. */
		v->preempted = preempt || prev_state == 0;
		v->next_pid = next->tgid;
		v->next_tid = ntid;
		copy_comm(v->next_comm, next->comm);
	}
	return 0;
}

/* preempt_count() bits (include/linux/preempt.h). */
#define SOFTIRQ_OFFSET (1U << 8)
#define HARDIRQ_MASK (0xfU << 16)
#define NMI_MASK (0xfU << 20)

/* Where this CPU's preempt count is, relative to this CPU's runqueue: both
 * are per-CPU variables, so their distance is the same on every CPU. Go
 * computes it from the kernel's BTF (irqctx.go); 0 = unknown. The direct
 * way, bpf_this_cpu_ptr(&__preempt_count), needs the kernel to resolve a
 * per-CPU symbol, which kernels built without KALLSYMS_ALL cannot. */
const volatile __s64 preempt_count_from_rq = 0;

/* In a hard or soft interrupt handler (or an NMI), current is whatever task
 * the interrupt landed on, not the waker: a timer, a device or the network
 * stack did the wakeup. A task that merely disabled softirqs, as the TCP
 * send path does, stays the waker; softirqs run by ksoftirqd are that
 * thread's. */
static __always_inline bool in_irq_context(struct task_struct *t)
{
	__s64 delta = preempt_count_from_rq;
	int pc;

	if (!delta || !bpf_core_field_exists(struct cfs_rq, rq))
		return false;
	/* current's runqueue is this CPU's (with CONFIG_FAIR_GROUP_SCHED, its
	 * sched entity points at it); checked, not assumed. */
	struct rq *rq = t->se.cfs_rq->rq;
	if (!rq || rq->cpu != bpf_get_smp_processor_id())
		return false;
	if (bpf_probe_read_kernel(&pc, sizeof(pc), (void *)rq + delta))
		return false;
	return pc & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET);
}

/* sched_waking fires in the waker's context. sched_wakeup would not do:
 * when the wakee's CPU is idle or shares no cache with the waker's, the
 * kernel queues the wakeup to that CPU, which raises sched_wakeup from its
 * IPI or idle loop, under whatever task runs there. */
SEC("tp_btf/sched_waking")
int BPF_PROG(on_sched_waking, struct task_struct *p)
{
	struct offcpu *o = bpf_task_storage_get(&offcpu, p, 0, 0);
	if (!o || !o->out_ts || o->preempted || o->wake_ts)
		return 0;
	o->wake_ts = bpf_ktime_get_ns();
	struct task_struct *t = bpf_get_current_task_btf();
	if (in_irq_context(t)) {
		o->kernel_wakeup = 1;
		return 0;
	}
	o->waker_pid = t->tgid;
	o->waker_tid = t->pid;
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
	struct task_struct *t = bpf_get_current_task_btf();
	v->out_ts = bpf_ktime_get_ns();
	v->wake_ts = v->out_ts;
	v->waker_pid = t->tgid;
	v->waker_tid = t->pid;
	v->kernel_wakeup = 0;
	v->preempted = 0;
	v->next_pid = 0;
	v->next_tid = 0;
	__builtin_memset(v->next_comm, 0, sizeof(v->next_comm));
	return 0;
}

#endif

/* The scheduler: one event per off-CPU interval of a recorded thread, sent
 * when it runs again, saying who took the CPU, whether it was preempted or
 * blocked, who woke it and how long it then waited for a CPU. */
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
	__u8 _pad[7];
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
		v->next_pid = next->tgid;
		v->next_tid = ntid;
		copy_comm(v->next_comm, next->comm);
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

#endif

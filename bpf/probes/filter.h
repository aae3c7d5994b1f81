/* The one filter: which tasks are recorded. Every hook asks it about a
 * task_struct (the current task, or the one a scheduler tracepoint names),
 * reading the task with BTF loads: no helper call but the map lookups. */
#ifndef KPROBE_FILTER_H
#define KPROBE_FILTER_H

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
}

/* Active filters must all match; with none, every task but the recorder's
 * own is recorded. */
static __always_inline bool want_task(struct task_struct *t)
{
	__u32 f = cfg.filters;
	__u32 self = cfg.self_tgid;
	__u32 tgid = t->tgid;

	if (self && tgid == self)
		return false;
	if (!f)
		return true;
	if ((f & FILTER_PID) && !bpf_map_lookup_elem(&filter_pids, &tgid))
		return false;
	if (f & FILTER_COMM) {
		/* The process's name (what ps and pgrep show): its thread group
		 * leader's comm, set from the executable at exec. Every thread
		 * of the process matches, whatever it calls itself. */
		char comm[COMM_LEN];

		copy_comm(comm, t->group_leader->comm);
		if (!bpf_map_lookup_elem(&filter_comms, comm))
			return false;
	}
	if (f & FILTER_CGROUP) {
		__u64 cgid = task_cgroup_id(t);

		if (!bpf_map_lookup_elem(&filter_cgroups, &cgid))
			return false;
	}
	return true;
}

/* A selected process's new processes are selected too (a command's workers,
 * a shell's children), as perf record and strace -f follow them: the
 * fork tracepoint fires before the child first runs. A process leaves the
 * selection when its thread group leader exits, so a reused pid is not
 * recorded and the map holds live processes only (filter_pids' size bounds
 * how many are followed at once). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(filter_on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u8 one = 1;

	if (!(cfg.filters & FILTER_PID) || ptgid == ctgid)
		return 0;
	if (bpf_map_lookup_elem(&filter_pids, &ptgid))
		bpf_map_update_elem(&filter_pids, &ctgid, &one, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(filter_on_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if ((cfg.filters & FILTER_PID) && p->pid == tgid)
		bpf_map_delete_elem(&filter_pids, &tgid);
	return 0;
}

/* The identity of task t in e, with BTF loads. */
static __always_inline void fill_task(struct event *e, struct task_struct *t, __u32 type, __u64 ts)
{
	e->ts_ns = ts;
	e->pid = t->tgid;
	e->tid = t->pid;
	e->cpu = bpf_get_smp_processor_id();
	e->type = type;
	e->cgroup_id = task_cgroup_id(t);
	copy_comm(e->comm, t->comm);
}

#endif

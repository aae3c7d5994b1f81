/* Page faults, user and kernel, through exceptions:page_fault_{user,kernel}
 * (x86 only). A fault's duration would need kprobes on handle_mm_fault,
 * which hardened kernels lack: faults carry dur_ns 0. */
#ifndef KPROBE_FAULT_H
#define KPROBE_FAULT_H

/* The tracepoints' format is stable ABI. */
struct pf_ctx {
	__u64 common;
	__u64 address;
	__u64 ip;
	__u64 error_code;
};

static __always_inline int page_fault(struct pf_ctx *ctx, bool kernel)
{
	struct task_struct *t = bpf_get_current_task_btf();
	if (!want_task(t))
		return 0;
	struct event *e = reserve(EV_PAGE_FAULT);
	if (!e)
		return 0;
	fill_task(e, t, EV_PAGE_FAULT, bpf_ktime_get_ns());
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

#endif

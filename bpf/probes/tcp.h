/* TCP send and receive, with the connection's 4-tuple.
 *
 * Preferred: fentry/fexit on tcp_sendmsg/tcp_recvmsg (gives a duration).
 * Fallback: the sock:sock_{send,recv}_length tracepoints, which fire after
 * every sendmsg/recvmsg on a socket. */
#ifndef KPROBE_TCP_H
#define KPROBE_TCP_H

#define AF_INET 2
#define AF_INET6 10
#define PROTO_TCP 6

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} tcp_start SEC(".maps");

/* sk is a BTF pointer (a tp_btf or fexit argument): read with BTF loads. */
static __always_inline int tcp_event(struct sock *sk, int ret, __u32 type, __u64 start)
{
	if (sk->sk_protocol != PROTO_TCP)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;

	struct task_struct *t = bpf_get_current_task_btf();
	if (!start && !want_task(t))
		return 0;

	__u64 now = bpf_ktime_get_ns();
	struct event *e = reserve(type);
	if (!e)
		return 0;
	fill_task(e, t, type, start ? start : now);
	if (start)
		e->dur_ns = now - start;
	e->ret = ret;
	if (ret < 0)
		e->err = -ret;
	e->fd = -1;
	e->family = family;
	e->sport = sk->__sk_common.skc_num;
	e->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (family == AF_INET) {
		__u32 s = sk->__sk_common.skc_rcv_saddr;
		__u32 d = sk->__sk_common.skc_daddr;
		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	} else {
		__builtin_memcpy(e->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(e->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	}
	submit(e);
	return 0;
}

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

static __always_inline int tcp_entry(__u32 type)
{
	struct task_struct *t = bpf_get_current_task_btf();
	if (!want_task(t))
		return 0;
	__u64 *ts = bpf_task_storage_get(&tcp_start, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ts) {
		count_lost(type);
		return 0;
	}
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
	return tcp_entry(EV_TCP_SEND);
}

/* tcp_sendmsg(sk, msg, size) since Linux 4.1. */
SEC("fexit/tcp_sendmsg")
int BPF_PROG(fexit_tcp_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return tcp_exit(sk, ret, EV_TCP_SEND);
}

SEC("fentry/tcp_recvmsg")
int BPF_PROG(fentry_tcp_recvmsg, struct sock *sk)
{
	return tcp_entry(EV_TCP_RECV);
}

/* An fexit program reads the return value after the arguments, so its slot
 * is the function's parameter count, which changed twice. One program per
 * prototype; Go loads the one that matches the kernel's BTF (fexitVariants
 * in attach.go). */

/* Linux 5.19 until addr_len was dropped: tcp_recvmsg(sk, msg, len, flags, addr_len). */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg5, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	return tcp_exit(sk, ret, EV_TCP_RECV);
}

/* Up to Linux 5.18: tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len). */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg6, struct sock *sk, struct msghdr *msg, size_t len, int nonblock,
	     int flags, int *addr_len, int ret)
{
	return tcp_exit(sk, ret, EV_TCP_RECV);
}

/* Since addr_len was dropped (6.18 has this one): tcp_recvmsg(sk, msg, len, flags). */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg4, struct sock *sk, struct msghdr *msg, size_t len, int flags, int ret)
{
	return tcp_exit(sk, ret, EV_TCP_RECV);
}

#endif

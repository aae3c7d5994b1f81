// The floor for a served syscall: a minimal seccomp user-notification server in C, with
// the sync wake-up, answering 64-byte reads of one fd with process_vm_writev. The replay
// benchmarks run it beside the engine, on the same workload, in the same run.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
/* argv[1]: the fd whose 64-byte reads are served */

static int send_fd(int sock, int fd) {
	char c = 0; struct iovec iov = {&c, 1};
	char ctl[CMSG_SPACE(sizeof(int))]; memset(ctl, 0, sizeof ctl);
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}
static int recv_fd(int sock) {
	char c; struct iovec iov = {&c, 1};
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
	if (recvmsg(sock, &m, 0) != 1) return -1;
	int fd; memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd); return fd;
}

int main(int argc, char **argv) {
	if (argc < 3) { fprintf(stderr, "usage: floor FD PROGRAM ARGS\n"); return 2; }
	long served_fd = atol(argv[1]);
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp)) { perror("socketpair"); return 1; }
	pid_t pid = fork();
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_read, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {sizeof f / sizeof f[0], f};
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		int l = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (l < 0 || send_fd(sp[1], l)) { perror("seccomp"); _exit(127); }
		close(l); close(sp[0]); close(sp[1]);
		execvp(argv[2], argv + 2);
		perror("exec"); _exit(127);
	}
	close(sp[1]);
	int l = recv_fd(sp[0]);
	if (l < 0) { perror("recv_fd"); return 1; }
	if (ioctl(l, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0))
		perror("sync wake-up");
	char data[65536]; memset(data, 'x', sizeof data);
	struct seccomp_notif req; struct seccomp_notif_resp resp;
	for (;;) {
		memset(&req, 0, sizeof req);
		if (ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
			if (errno == EINTR) continue;
			struct pollfd p = {l, POLLIN, 0};
			if (poll(&p, 1, -1) < 0 || (p.revents & POLLHUP)) break;
			continue;
		}
		memset(&resp, 0, sizeof resp);
		resp.id = req.id;
		if (req.data.nr == __NR_read && (long)req.data.args[0] == served_fd) {
			size_t n = req.data.args[2] < sizeof data ? req.data.args[2] : sizeof data;
			struct iovec local = {data, n}, remote = {(void *)req.data.args[1], n};
			if (process_vm_writev(req.pid, &local, 1, &remote, 1, 0) != (ssize_t)n) {
				resp.error = -EFAULT;
			} else {
				resp.val = n;
			}
		} else {
			resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		}
		ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

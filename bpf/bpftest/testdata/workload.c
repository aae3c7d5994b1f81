// Test workload for the bpf package: does a known amount of I/O, TCP,
// page faults and sleeps on one thread, after a "go" byte on stdin.
// Built by the tests with gcc; C keeps it single-threaded, so the counts
// the tests assert are exact.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
	perror(what);
	_exit(2);
}

static void wait_go(void) {
	char c;
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		die("read go");
}

// tcp_pair connects a client to a listener on the loopback address of family fam.
static void tcp_pair(int fam, int *cli, int *srv, int *cport, int *sport) {
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (fam == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	int l = socket(fam, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&ss, len) < 0 || listen(l, 1) < 0)
		die("listen");
	socklen_t sl = sizeof(ss);
	getsockname(l, (void *)&ss, &sl);
	*cli = socket(fam, SOCK_STREAM, 0);
	if (connect(*cli, (void *)&ss, len) < 0)
		die("connect");
	*srv = accept(l, NULL, NULL);
	if (*srv < 0)
		die("accept");
	close(l);
	struct sockaddr_storage la;
	sl = sizeof(la);
	getsockname(*cli, (void *)&la, &sl);
	if (fam == AF_INET) {
		*cport = ntohs(((struct sockaddr_in *)&la)->sin_port);
		*sport = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else {
		*cport = ntohs(((struct sockaddr_in6 *)&la)->sin6_port);
		*sport = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
}

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

// all FILE K B M S P NSLEEP SLEEPMS
static int mode_all(char **av) {
	const char *path = av[0];
	int K = atoi(av[1]), B = atoi(av[2]), M = atoi(av[3]), S = atoi(av[4]);
	int P = atoi(av[5]), NS = atoi(av[6]), SMS = atoi(av[7]);
	long page = sysconf(_SC_PAGESIZE);

	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open");
	struct stat st;
	fstat(fd, &st);
	unsigned char *wbuf = malloc((size_t)K * B), *rbuf = malloc(B), *msg = malloc(S), *rmsg = malloc(S);
	for (long i = 0; i < (long)K * B; i++)
		wbuf[i] = (unsigned char)((i / B) * 31 + (i % B));
	memset(rbuf, 0, B);
	memset(msg, 'm', S);
	memset(rmsg, 0, S);

	int c4, s4, cp4, sp4, c6, s6, cp6, sp6;
	tcp_pair(AF_INET, &c4, &s4, &cp4, &sp4);
	tcp_pair(AF_INET6, &c6, &s6, &cp6, &sp6);

	size_t rlen = (size_t)P * page;
	unsigned char *region = mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		die("mmap");
	madvise(region, rlen, MADV_NOHUGEPAGE);

	printf("{\"pid\":%d,\"tid\":%ld,\"fd\":%d,\"dev\":%lu,\"ino\":%lu,"
	       "\"v4\":{\"client_port\":%d,\"server_port\":%d},"
	       "\"v6\":{\"client_port\":%d,\"server_port\":%d},"
	       "\"region\":%lu,\"region_len\":%lu,\"page_size\":%ld}\n",
	       getpid(), (long)syscall(SYS_gettid), fd, (unsigned long)st.st_dev, (unsigned long)st.st_ino,
	       cp4, sp4, cp6, sp6, (unsigned long)region, (unsigned long)rlen, page);
	wait_go();

	// file: K pwrite64 + K pread64, then one each of write/read/writev/readv
	for (int i = 0; i < K; i++)
		if (pwrite(fd, wbuf + (size_t)i * B, B, (off_t)i * B) != B)
			die("pwrite");
	for (int i = 0; i < K; i++)
		if (pread(fd, rbuf, B, (off_t)i * B) != B)
			die("pread");
	lseek(fd, 0, SEEK_SET);
	if (write(fd, wbuf, B) != B)
		die("write");
	struct iovec wv[2] = {{wbuf + B, B / 2}, {wbuf + B + B / 2, B - B / 2}};
	if (writev(fd, wv, 2) != B)
		die("writev");
	lseek(fd, 0, SEEK_SET);
	if (read(fd, rbuf, B) != B)
		die("read");
	struct iovec rv[2] = {{rbuf, B / 2}, {rbuf + B / 2, B - B / 2}};
	if (readv(fd, rv, 2) != B)
		die("readv");

	// tcp: M messages client -> server, over IPv4 then IPv6
	for (int i = 0; i < M; i++) {
		if (send(c4, msg, S, 0) != S || recv(s4, rmsg, S, MSG_WAITALL) != S)
			die("tcp4");
	}
	for (int i = 0; i < M; i++) {
		if (send(c6, msg, S, 0) != S || recv(s6, rmsg, S, MSG_WAITALL) != S)
			die("tcp6");
	}

	// page faults: one write fault per fresh page
	for (int i = 0; i < P; i++)
		region[(size_t)i * page] = 1;

	struct timespec ts = {SMS / 1000, (long)(SMS % 1000) * 1000000};
	for (int i = 0; i < NS; i++)
		nanosleep(&ts, NULL);
	_exit(0);
}

// rate N SECONDS: 1-byte writes to /dev/null at N per second.
static int mode_rate(char **av) {
	long n = atol(av[0]);
	double secs = atof(av[1]);
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		die("open");
	printf("{\"pid\":%d,\"tid\":%ld,\"fd\":%d}\n", getpid(), (long)syscall(SYS_gettid), fd);
	wait_go();
	uint64_t t0 = now_ns(), total = (uint64_t)(n * secs), done = 0;
	struct timespec nap = {0, 1000000}; // 1 ms: keeps sched events a small share
	char c = 'x';
	while (done < total) {
		uint64_t due = (uint64_t)((double)(now_ns() - t0) * n / 1e9);
		if (due > total)
			due = total;
		while (done < due) {
			if (write(fd, &c, 1) != 1)
				die("write");
			done++;
		}
		if (done < total)
			nanosleep(&nap, NULL);
	}
	_exit(0);
}

// writes K: K 1-byte writes to /dev/null as fast as possible.
static int mode_writes(char **av) {
	long k = atol(av[0]);
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		die("open");
	printf("{\"pid\":%d,\"tid\":%ld,\"fd\":%d}\n", getpid(), (long)syscall(SYS_gettid), fd);
	wait_go();
	char c = 'x';
	for (long i = 0; i < k; i++)
		if (write(fd, &c, 1) != 1)
			die("write");
	_exit(0);
}

// timer N MS: N sleeps of MS ms, each ended by a timer interrupt, then one
// read of 2 bytes on stdin, ended by a task (the test writing). The process
// is pinned to one CPU with a child that spins there, so the timer
// interrupts land on the spinner: the wakeups must not be credited to it.
static int mode_timer(char **av) {
	int n = atoi(av[0]), ms = atoi(av[1]);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(sched_getcpu(), &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity");
	pid_t spinner = fork();
	if (spinner < 0)
		die("fork");
	if (spinner == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (volatile unsigned long i = 0;; i++)
			;
	}
	printf("{\"pid\":%d,\"tid\":%ld,\"spinner\":%d}\n", getpid(), (long)syscall(SYS_gettid), spinner);
	wait_go();
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	for (int i = 0; i < n; i++)
		nanosleep(&ts, NULL);
	char buf[2];
	if (read(0, buf, sizeof(buf)) < 1)
		die("read");
	kill(spinner, SIGKILL); // no waitpid: the spinner's exit would wake us
	_exit(0);
}

struct worker {
	pthread_t thread;
	int id, fd;
	long k;
};

static void *worker_run(void *arg) {
	struct worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "worker-%d", w->id);
	pthread_setname_np(pthread_self(), name); // threads name themselves, as JVMs do
	char c = 'w';
	for (long i = 0; i < w->k; i++)
		if (write(w->fd, &c, 1) != 1)
			die("worker write");
	return NULL;
}

// threads N K: after "go", starts N threads named worker-0..N-1; each, and
// the main thread, makes K 1-byte writes to /dev/null.
static int mode_threads(char **av) {
	int n = atoi(av[0]);
	long k = atol(av[1]);
	int fd = open("/dev/null", O_WRONLY);
	if (fd < 0)
		die("open");
	printf("{\"pid\":%d,\"tid\":%ld,\"fd\":%d}\n", getpid(), (long)syscall(SYS_gettid), fd);
	wait_go();
	struct worker *ws = calloc(n, sizeof(*ws));
	for (int i = 0; i < n; i++) {
		ws[i] = (struct worker){.id = i, .fd = fd, .k = k};
		if (pthread_create(&ws[i].thread, NULL, worker_run, &ws[i]) != 0)
			die("pthread_create");
	}
	char c = 'm';
	for (long i = 0; i < k; i++)
		if (write(fd, &c, 1) != 1)
			die("write");
	for (int i = 0; i < n; i++)
		pthread_join(ws[i].thread, NULL);
	_exit(0);
}

// exec K PATH ARGS...: after "go", K 1-byte writes to /dev/null, then exec
// PATH with ARGS (a copy of this program under another name, so that the
// process changes its name).
static int mode_exec(int argc, char **av) {
	long k = atol(av[0]);
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die("open");
	printf("{\"pid\":%d,\"tid\":%ld,\"fd\":%d}\n", getpid(), (long)syscall(SYS_gettid), fd);
	wait_go();
	char c = 'e';
	for (long i = 0; i < k; i++)
		if (write(fd, &c, 1) != 1)
			die("write");
	execv(av[1], av + 1);
	die("execv");
	return 2;
}

int main(int argc, char **argv) {
	if (argc >= 10 && strcmp(argv[1], "all") == 0)
		return mode_all(argv + 2);
	if (argc >= 4 && strcmp(argv[1], "rate") == 0)
		return mode_rate(argv + 2);
	if (argc >= 3 && strcmp(argv[1], "writes") == 0)
		return mode_writes(argv + 2);
	if (argc >= 4 && strcmp(argv[1], "timer") == 0)
		return mode_timer(argv + 2);
	if (argc >= 4 && strcmp(argv[1], "threads") == 0)
		return mode_threads(argv + 2);
	if (argc >= 5 && strcmp(argv[1], "exec") == 0)
		return mode_exec(argc - 2, argv + 2);
	fprintf(stderr, "usage: workload all FILE K B M S P NSLEEP SLEEPMS | rate N SECONDS | writes K | timer N MS"
			" | threads N K | exec K PATH ARGS...\n");
	return 2;
}
